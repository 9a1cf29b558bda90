// Store failure is a recorded fact: a turn is rolled back when, and only
// when, the store failed; a handler that throws leaves nothing behind; and
// after every turn, whatever failed, the coordinator's memory equals what a
// restart would load.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <functional>

#include "absl/strings/str_join.h"
#include "coordinator/coordinator.h"
#include "fmt/format.h"
#include "protocols/codec.h"

namespace sublet::coordinator {
namespace {

using ::testing::HasSubstr;
using ::testing::SizeIs;

using Sent = std::vector<std::pair<std::string, protocols::Envelope>>;

// What the store holds of a cluster, and what is derived from it; leaves out
// what is not persisted by design (connections, heartbeats, progress, the
// reasons of waiting jobs, which every scheduling pass recomputes).
std::string Fingerprint(const Cluster& c) {
  std::string out;
  for (const auto& [id, job] : c.jobs()) {
    out += fmt::format(
        "job {} {} {} {} restarts={} preemptions={} attempt={} ckpt={} resume={} start={} "
        "gpu_s={} lost_s={} stopping={} reclaim={} reason={}\n",
        id, job.tenant, job.spec.name, JobStateName(job.state), job.restarts, job.preemptions,
        job.attempt, job.last_checkpoint_step, job.resume_step, absl::FormatTime(job.start_time),
        job.gpu_seconds, job.gpu_seconds_lost, job.stopping, job.reclaim_id,
        job.state == JobState::kPending ? "" : job.reason);
    if (IsFinal(job.state) && !job.stopping) continue;  // ended: placement on disk only
    for (const RankRecord& r : job.ranks) {
      out += fmt::format("  rank {} {} {} gpus={} exited={} code={}\n", r.rank, r.node,
                         r.incarnation, absl::StrJoin(r.gpus, ","), r.exited, r.exit_code);
    }
  }
  for (const auto& [name, node] : c.nodes()) {
    out += fmt::format("node {} {} gpus={} free={} reclaim={} jobs={}\n", name,
                       NodeStateName(node.state), node.gpus.size(), c.FreeGpus(node),
                       node.reclaim_id, absl::StrJoin(c.JobsOnNode(name), ","));
  }
  for (const auto& [id, r] : c.reclaims()) {
    out += fmt::format("reclaim {} {} nodes={} warnings={}\n", id, ReclaimStateName(r.state),
                       absl::StrJoin(r.nodes, ","), r.warnings.size());
    for (const ReclaimVictim& v : r.victims) {
      out += fmt::format("  victim {} {} step={}\n", v.job_id, VictimStateName(v.state),
                         v.checkpoint_step);
    }
  }
  return out;
}

class StoreFailureTest : public ::testing::Test {
 protected:
  void SetUp() override {
    options_.listen = "tcp://127.0.0.1:0";
    options_.state_dir = ::testing::TempDir() + "/store_failure_test_" +
                         ::testing::UnitTest::GetInstance()->current_test_info()->name();
    options_.config.storage_root = options_.state_dir + "/storage";
    options_.config.AddToken("acme-token", {Role::kTenant, "acme"});
    options_.config.AddToken("globex-token", {Role::kTenant, "globex"});
    options_.config.AddToken("admin-token", {Role::kAdmin, "infra"});
    options_.config.AddToken("node-token", {Role::kWorker, "workers"});
    options_.config.worker_keys.insert(node_key_);
  }

  void Start() {
    coordinator_.reset();
    std::filesystem::remove_all(options_.state_dir);
    auto c = Coordinator::Create(options_, context_, clock_);
    ASSERT_TRUE(c.ok()) << c.status();
    coordinator_ = *std::move(c);
  }

  protocols::Incoming Frame(const std::string& token, protocols::Body body) {
    protocols::Envelope e;
    e.request_id = ++next_request_;
    e.token = token;
    e.body = std::move(body);
    // Every frame comes over CURVE, labelled as the ZAP handler would.
    return {"peer-" + token, std::move(e), 64, "curve:" + node_key_};
  }

  protocols::Incoming Submit(const std::string& name, uint32_t nodes = 1, uint32_t gpus = 2,
                             const std::string& token = "acme-token") {
    protocols::JobSpec spec;
    spec.name = name;
    spec.nodes = nodes;
    spec.gpus_per_node = gpus;
    spec.command = {"true"};
    return Frame(token, protocols::SubmitJobRequest{spec});
  }

  // node's report: every live rank the coordinator placed there, exiting
  // with `code` when one is given, with a checkpoint at step 10.
  protocols::Incoming Report(const std::string& node, std::optional<int32_t> code = {}) {
    protocols::WorkerReport r;
    r.node = node;
    r.incarnation = "inc-" + node;
    r.address = "127.0.0.1";
    r.gpus = {{0, "emulated", 0}, {1, "emulated", 0}};
    r.free_ports = {41000, 41001, 41002, 41003};
    const Cluster& c = coordinator_->TEST_cluster();
    for (uint64_t id : c.JobsOnNode(node)) {
      const Job& job = *c.FindJob(id);
      for (const RankRecord& rank : job.ranks) {
        if (rank.node != node || rank.exited) continue;
        protocols::RankStatus s{
            {job.id, job.attempt, rank.rank}, code.has_value(), code.value_or(0)};
        s.progress.step = 12;
        s.progress.checkpoint_step = 10;
        s.progress.time_unix_ms = absl::ToUnixMillis(clock_.Now());
        r.ranks.push_back(s);
      }
    }
    return Frame("node-token", std::move(r));
  }

  // What a coordinator restarted now would hold.
  std::string Reloaded() {
    auto store = Store::Open(options_.state_dir + "/state.db");
    EXPECT_TRUE(store.ok()) << store.status();
    Cluster fresh(**store, clock_, options_.config);
    absl::Status s = fresh.Recover();
    EXPECT_TRUE(s.ok()) << s;
    return Fingerprint(fresh);
  }

  Sent Turn(std::vector<protocols::Incoming> batch) {
    return coordinator_->TEST_Turn(std::move(batch));
  }

  // Submissions, placements, exits, a failure, a reclaim with its
  // acknowledgement, a release and a cancel: one batch per step.
  std::vector<std::function<std::vector<protocols::Incoming>()>> Scenario() {
    return {
        [&] { return std::vector{Report("node-a"), Report("node-b")}; },
        [&] { return std::vector{Submit("one"), Submit("two")}; },
        [&] { return std::vector{Report("node-a", 0), Report("node-b")}; },
        [&] {
          return std::vector{Submit("three", 2, 1),
                             Frame("admin-token", protocols::ReclaimRequest{
                                                      {"node-b"}, 0, 60'000, "maintenance"})};
        },
        [&] { return std::vector{Report("node-a", 75), Report("node-b", 75)}; },
        [&] {
          protocols::ReleaseRequest release;
          release.nodes = {"node-b"};
          return std::vector{Frame("admin-token", release),
                             Frame("acme-token", protocols::CancelJobRequest{3})};
        },
    };
  }

  zmq::context_t context_;
  FakeClock clock_;
  CoordinatorOptions options_;
  std::unique_ptr<Coordinator> coordinator_;
  uint64_t next_request_ = 0;
  const std::string node_key_ = protocols::NewCurveKeyPair().public_key;
};

absl::Status StatusOf(const Sent& sent, uint64_t request_id) {
  for (const auto& [peer, envelope] : sent) {
    if (envelope.request_id == request_id) return protocols::StatusFromReply(envelope);
  }
  return absl::NotFoundError(fmt::format("no reply to request {}", request_id));
}

TEST_F(StoreFailureTest, MemoryEqualsTheStoreAfterEveryTurnWhicheverWriteFails) {
  Start();
  for (auto& step : Scenario()) Turn(step());
  const uint64_t writes = coordinator_->TEST_store().TEST_writes();
  ASSERT_GT(writes, 20u) << "the scenario writes";
  for (uint64_t n = 1; n <= writes; ++n) {
    Start();
    coordinator_->TEST_store().TEST_FailWrite(static_cast<int>(n));
    int turn = 0;
    for (auto& step : Scenario()) {
      Turn(step());
      ASSERT_EQ(Fingerprint(coordinator_->TEST_cluster()), Reloaded())
          << "write " << n << " failed; after turn " << turn;
      ++turn;
    }
    EXPECT_GE(coordinator_->TEST_store().TEST_writes(), n) << "the failure was injected";
  }
}

TEST_F(StoreFailureTest, AFailedWriteRollsBackTheWholeTurnAndEveryRequesterIsToldToRetry) {
  Start();
  coordinator_->TEST_store().TEST_FailWrite(3);
  protocols::Incoming a = Submit("a"), b = Submit("b"), c = Submit("c");
  const uint64_t ids[] = {a.envelope->request_id, b.envelope->request_id, c.envelope->request_id};
  Sent sent = Turn({std::move(a), std::move(b), std::move(c)});
  for (uint64_t id : ids) {
    absl::Status s = StatusOf(sent, id);
    EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable) << s;
    EXPECT_THAT(std::string(s.message()), HasSubstr("retry"));
  }
  EXPECT_THAT(coordinator_->TEST_cluster().jobs(), SizeIs(0));
  EXPECT_EQ(Reloaded(), "");
}

TEST_F(StoreFailureTest, AResourceExhaustedRefusalDoesNotRollBackTheOthersInItsBatch) {
  options_.config.max_jobs_per_tenant = 2;
  Start();
  std::vector<protocols::Incoming> batch;
  batch.push_back(Submit("a1"));
  batch.push_back(Submit("a2"));
  batch.push_back(Submit("a3"));
  batch.push_back(Submit("g1", 1, 2, "globex-token"));
  const uint64_t third = batch[2].envelope->request_id;
  const uint64_t globex = batch[3].envelope->request_id;
  Sent sent = Turn(std::move(batch));
  absl::Status refused = StatusOf(sent, third);
  EXPECT_EQ(refused.code(), absl::StatusCode::kResourceExhausted) << refused;
  EXPECT_THAT(std::string(refused.message()), HasSubstr("max_jobs_per_tenant"));
  EXPECT_TRUE(StatusOf(sent, globex).ok());
  EXPECT_THAT(coordinator_->TEST_cluster().jobs(), SizeIs(3));
  EXPECT_EQ(Fingerprint(coordinator_->TEST_cluster()), Reloaded());
}

TEST_F(StoreFailureTest, AThrowingHandlerLeavesNoPartialStateAndFailsOnlyItsRequest) {
  uint64_t boom_id = 0;
  options_.TEST_after_request = [&boom_id](const protocols::Envelope& e) {
    if (e.request_id == boom_id) throw std::runtime_error("a bug after the insert");
  };
  Start();
  Turn({Report("node-a")});
  protocols::Incoming a = Submit("a"), boom = Submit("boom"), b = Submit("b");
  boom_id = boom.envelope->request_id;
  const uint64_t b_id = b.envelope->request_id;
  Sent sent = Turn({std::move(a), std::move(boom), std::move(b)});
  absl::Status crashed = StatusOf(sent, boom_id);
  EXPECT_EQ(crashed.code(), absl::StatusCode::kInternal) << crashed;
  EXPECT_TRUE(StatusOf(sent, b_id).ok());
  std::vector<std::string> names;
  for (const auto& [id, job] : coordinator_->TEST_cluster().jobs()) names.push_back(job.spec.name);
  EXPECT_THAT(names, ::testing::ElementsAre("a", "b"));
  EXPECT_EQ(Fingerprint(coordinator_->TEST_cluster()), Reloaded());
  // The node kept its connection through the reload: the job placed on it
  // in that turn was sent to it.
  bool synced = false;
  for (const auto& [peer, envelope] : sent) {
    synced = synced || (peer == "peer-node-token" &&
                        std::holds_alternative<protocols::WorkerSync>(envelope.body));
  }
  EXPECT_TRUE(synced);
}

}  // namespace
}  // namespace sublet::coordinator

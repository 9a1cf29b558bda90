// The audit log through the coordinator's API: admins read it (newest N,
// since a time), tenants may not; refused reclaims, releases and worker
// registrations are in it with the reason, and stay there whatever the
// refused request rolled back.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>

#include "coordinator/coordinator.h"
#include "fmt/format.h"
#include "protocols/codec.h"

namespace sublet::coordinator {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

using Sent = std::vector<std::pair<std::string, protocols::Envelope>>;

class AuditTest : public ::testing::Test {
 protected:
  void SetUp() override {
    options_.listen = "tcp://127.0.0.1:0";
    options_.state_dir = ::testing::TempDir() + "/audit_test_" +
                         ::testing::UnitTest::GetInstance()->current_test_info()->name();
    std::filesystem::remove_all(options_.state_dir);
    options_.config.storage_root = options_.state_dir + "/storage";
    options_.config.AddToken("acme-token", {Role::kTenant, "acme"});
    options_.config.AddToken("admin-token", {Role::kAdmin, "infra"});
    options_.config.AddToken("node-token", {Role::kWorker, "workers"});
    options_.config.worker_keys.insert(node_key_);
  }

  void Start() {
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

  protocols::Incoming Report(const std::string& node, const std::string& instance) {
    protocols::WorkerReport r;
    r.node = node;
    r.incarnation = "inc-" + instance;
    r.instance = instance;
    r.address = "10.0.0." + std::to_string(instance.size());
    r.gpus = {{0, "emulated", 0}, {1, "emulated", 0}};
    return Frame("node-token", std::move(r));
  }

  // One request in its own turn; the reply's status.
  absl::StatusOr<protocols::Body> Call(const std::string& token, protocols::Body body) {
    protocols::Incoming in = Frame(token, std::move(body));
    const uint64_t id = in.envelope->request_id;
    std::vector<protocols::Incoming> batch;
    batch.push_back(std::move(in));
    for (auto& [peer, envelope] : coordinator_->TEST_Turn(std::move(batch))) {
      if (envelope.request_id != id) continue;
      absl::Status status = protocols::StatusFromReply(envelope);
      if (!status.ok()) return status;
      return envelope.body;
    }
    return absl::NotFoundError(fmt::format("no reply to request {}", id));
  }

  void Turn(protocols::Incoming in) {
    std::vector<protocols::Incoming> batch;
    batch.push_back(std::move(in));
    coordinator_->TEST_Turn(std::move(batch));
  }

  std::vector<protocols::AuditEntry> Audit(protocols::ListAuditRequest request = {}) {
    auto reply = Call("admin-token", request);
    EXPECT_TRUE(reply.ok()) << reply.status();
    if (!reply.ok()) return {};
    return std::get<protocols::AuditListReply>(*reply).entries;
  }

  std::vector<std::string> Actions() {
    std::vector<std::string> out;
    for (const auto& e : Audit()) out.push_back(e.action + ":" + e.who);
    return out;
  }

  protocols::ReclaimRequest ReclaimOf(std::vector<std::string> nodes, uint32_t gpus = 0) {
    return {std::move(nodes), gpus, 60'000, "eval sprint"};
  }

  zmq::context_t context_;
  FakeClock clock_;
  CoordinatorOptions options_;
  std::unique_ptr<Coordinator> coordinator_;
  uint64_t next_request_ = 0;
  const std::string node_key_ = protocols::NewCurveKeyPair().public_key;
};

TEST_F(AuditTest, AdminReadsTheNewestEntriesOldestFirst) {
  Start();
  Turn(Report("node-a", "i1"));
  for (int i = 0; i < 3; ++i) {
    clock_.Advance(absl::Minutes(10));
    ASSERT_TRUE(Call("admin-token", ReclaimOf({"node-a"})).ok());
    ASSERT_TRUE(Call("admin-token", protocols::ReleaseRequest{0, {"node-a"}}).ok());
  }
  std::vector<protocols::AuditEntry> all = Audit();
  ASSERT_EQ(all.size(), 9u) << "reclaim, handover, release, three times";
  EXPECT_EQ(all[0].action, "reclaim");
  EXPECT_THAT(all[0].detail, HasSubstr("reason: eval sprint"));
  EXPECT_EQ(all[0].who, "infra");

  std::vector<protocols::AuditEntry> last_two = Audit({.since_ms = 0, .limit = 2});
  ASSERT_EQ(last_two.size(), 2u);
  EXPECT_EQ(last_two[0], all[7]);
  EXPECT_EQ(last_two[1], all[8]);

  clock_.Advance(absl::Minutes(5));
  std::vector<protocols::AuditEntry> recent = Audit({.since_ms = 4 * 60'000, .limit = 0});
  ASSERT_EQ(recent.size(), 0u) << "the last entries are 5 minutes old";
  recent = Audit({.since_ms = 12 * 60'000, .limit = 0});
  ASSERT_EQ(recent.size(), 3u) << "the third round only";
  EXPECT_EQ(recent[0], all[6]);
}

TEST_F(AuditTest, ATenantMayNotReadTheAuditLog) {
  Start();
  auto reply = Call("acme-token", protocols::ListAuditRequest{});
  EXPECT_EQ(reply.status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(std::string(reply.status().message()), HasSubstr("only admins"));
}

TEST_F(AuditTest, RefusedReclaimsAreAuditedWithWhoAndWhy) {
  Start();
  Turn(Report("node-a", "i1"));
  EXPECT_EQ(Call("acme-token", ReclaimOf({"node-a"})).status().code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(Call("admin-token", ReclaimOf({"node-z"})).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(Call("admin-token", ReclaimOf({}, 100)).status().code(),
            absl::StatusCode::kInvalidArgument);
  std::vector<protocols::AuditEntry> audit = Audit();
  ASSERT_EQ(audit.size(), 3u);
  EXPECT_EQ(audit[0].who, "acme");
  EXPECT_EQ(audit[0].action, "reclaim_refused");
  EXPECT_THAT(audit[0].detail, HasSubstr("acme is not an admin"));
  EXPECT_THAT(audit[0].detail, HasSubstr("reason given: eval sprint"));
  EXPECT_EQ(audit[1].who, "infra");
  EXPECT_EQ(audit[1].action, "reclaim_refused");
  EXPECT_THAT(audit[1].detail, HasSubstr("node node-z not found"));
  EXPECT_THAT(audit[2].detail, HasSubstr("--gpus 100: only 2 GPUs"));
  EXPECT_THAT(audit[2].detail, HasSubstr("asked: --gpus 100"));
}

TEST_F(AuditTest, RefusedReleasesAreAudited) {
  Start();
  Turn(Report("node-a", "i1"));
  EXPECT_FALSE(Call("acme-token", protocols::ReleaseRequest{1, {}}).ok());
  EXPECT_FALSE(Call("admin-token", protocols::ReleaseRequest{0, {"node-a"}}).ok());
  std::vector<protocols::AuditEntry> audit = Audit();
  ASSERT_EQ(audit.size(), 2u);
  EXPECT_EQ(audit[0].action, "release_refused");
  EXPECT_EQ(audit[0].who, "acme");
  EXPECT_THAT(audit[0].detail, HasSubstr("asked: reclaim 1"));
  EXPECT_THAT(audit[1].detail, HasSubstr("node node-a is not held by a reclaim"));
}

// The refused request's own writes are rolled back (here: it throws after
// its handler, as a bug would); its audit entry is written after that.
TEST_F(AuditTest, ARefusalsAuditEntrySurvivesTheRollbackOfItsRequest) {
  uint64_t boom_id = 0;
  options_.TEST_after_request = [&boom_id](const protocols::Envelope& e) {
    if (e.request_id == boom_id) throw std::runtime_error("a bug after the refusal");
  };
  Start();
  boom_id = next_request_ + 1;
  EXPECT_EQ(Call("acme-token", ReclaimOf({"node-a"})).status().code(), absl::StatusCode::kInternal);
  EXPECT_THAT(Actions(), ElementsAre("reclaim_refused:acme"));
}

TEST_F(AuditTest, ASuccessfulReclaimIsNotAuditedAsRefused) {
  Start();
  Turn(Report("node-a", "i1"));
  ASSERT_TRUE(Call("admin-token", ReclaimOf({"node-a"})).ok());
  EXPECT_THAT(Actions(), ElementsAre("reclaim:infra", "handover:scheduler"));
}

TEST_F(AuditTest, AWorkerClaimingAConnectedNodesNameIsAuditedOnce) {
  Start();
  Turn(Report("node-a", "first"));
  for (int i = 0; i < 3; ++i) Turn(Report("node-a", "second"));  // it keeps reporting
  std::vector<protocols::AuditEntry> audit = Audit();
  ASSERT_EQ(audit.size(), 1u);
  EXPECT_EQ(audit[0].who, "worker:node-a");
  EXPECT_EQ(audit[0].action, "registration_refused");
  EXPECT_THAT(audit[0].detail, HasSubstr("connected from another worker (instance first)"));
  EXPECT_THAT(audit[0].detail, HasSubstr("this worker (instance second)"));
  EXPECT_EQ(coordinator_->TEST_cluster().FindNode("node-a")->instance, "first");
}

TEST_F(AuditTest, ANodeWithAnUnlistedKeyIsRefusedAndAuditedOncePerKey) {
  Start();
  const std::string stranger = protocols::NewCurveKeyPair().public_key;
  for (int i = 0; i < 3; ++i) {  // it keeps reporting
    protocols::Incoming in = Report("node-a", "i1");
    in.user_id = "curve:" + stranger;
    const uint64_t id = in.envelope->request_id;
    std::vector<protocols::Incoming> batch;
    batch.push_back(std::move(in));
    Sent sent = coordinator_->TEST_Turn(std::move(batch));
    ASSERT_EQ(sent.size(), 1u);
    EXPECT_EQ(sent[0].second.request_id, id);
    absl::Status refused = protocols::StatusFromReply(sent[0].second);
    EXPECT_EQ(refused.code(), absl::StatusCode::kPermissionDenied);
    EXPECT_THAT(std::string(refused.message()), HasSubstr(stranger));
  }
  EXPECT_EQ(coordinator_->TEST_cluster().FindNode("node-a"), nullptr);
  std::vector<protocols::AuditEntry> audit = Audit();
  ASSERT_EQ(audit.size(), 1u);
  EXPECT_EQ(audit[0].who, "worker:node-a");
  EXPECT_EQ(audit[0].action, "registration_refused");
  EXPECT_THAT(audit[0].detail, HasSubstr("node key " + stranger + " is not listed"));
}

TEST_F(AuditTest, AListedNodeWithoutTheConfiguredWorkerTokenIsRefused) {
  Start();
  protocols::Incoming in = Report("node-a", "i1");
  in.envelope->token = "not-the-node-token";
  Turn(std::move(in));
  EXPECT_EQ(coordinator_->TEST_cluster().FindNode("node-a"), nullptr);
  EXPECT_THAT(Actions(), ElementsAre("registration_refused:worker:node-a"));
  Turn(Report("node-a", "i1"));
  EXPECT_NE(coordinator_->TEST_cluster().FindNode("node-a"), nullptr);
}

TEST_F(AuditTest, AFrameWithoutACurveLabelIsServedNothing) {
  Start();
  protocols::Incoming in = Frame("admin-token", protocols::ListAuditRequest{});
  in.user_id.clear();  // as if no ZAP handler had labelled the connection
  std::vector<protocols::Incoming> batch;
  batch.push_back(std::move(in));
  Sent sent = coordinator_->TEST_Turn(std::move(batch));
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_EQ(protocols::StatusFromReply(sent[0].second).code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_FALSE(std::holds_alternative<protocols::AuditListReply>(sent[0].second.body));
}

}  // namespace
}  // namespace sublet::coordinator

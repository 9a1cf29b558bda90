// The Worker with real processes: first driven step by step (fake clock),
// then end to end through its event loop against a test-owned ServerChannel
// acting as the coordinator.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <functional>
#include <thread>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "fmt/format.h"
#include "protocols/channel.h"
#include "tests/worker/test_util.h"
#include "tests/worker/worker_test_peer.h"
#include "worker/control_client.h"
#include "worker/inventory.h"
#include "worker/worker.h"

namespace sublet::worker {
namespace {

using protocols::RankLaunch;
using protocols::RankStatus;
using protocols::WorkerReport;
using protocols::WorkerSync;
using ::testing::HasSubstr;

RankKey Key(uint32_t rank) { return RankKey{.job_id = 9, .attempt = 1, .rank = rank}; }

RankLaunch ShellRank(uint32_t rank, const std::string& script) {
  return RankLaunch{.key = Key(rank),
                    .command = {"/bin/sh", "-c", script},
                    .env = {{"SUBLET_RANK", std::to_string(rank)}},
                    .gpus = {rank}};
}

WorkerSync SyncFor(const std::string& incarnation, std::vector<RankLaunch> desired,
                   std::vector<RankKey> acked = {}) {
  WorkerSync sync;
  sync.incarnation = incarnation;
  sync.desired = std::move(desired);
  sync.acked_exits = std::move(acked);
  sync.stop_grace_ms = 5000;
  return sync;
}

Worker::Options OptionsFor(const testing::TempDir& dir, const std::string& coordinator) {
  return Worker::Options{.coordinator = coordinator,
                         .node = "node-e2e",
                         .token = "node-token",
                         .work_dir = dir.path(),
                         .gpus = EmulatedGpus(2),
                         .heartbeat = absl::Milliseconds(200)};
}

// ---- Worker + PosixProcessLauncher, driven step by step -----------------

class WorkerProcessTest : public ::testing::Test {
 protected:
  WorkerProcessTest() : worker_(OptionsFor(dir_, "tcp://127.0.0.1:1"), clock_, launcher_, context_) {
    EXPECT_TRUE(peer_.Prepare().ok());
  }

  // A failed test must not leave ranks behind.
  void TearDown() override {
    peer_.HandleExits(launcher_.Reap());
    for (const RankRecord& record : peer_.ranks().LiveRanks()) {
      (void)launcher_.SignalGroup(record.pid, SIGKILL);
    }
  }

  void Launch(std::vector<RankLaunch> ranks) {
    peer_.HandleSync(SyncFor(worker_.incarnation(), std::move(ranks)));
  }

  // Feeds exits to the worker until `key` has exited; its code, or nullopt.
  std::optional<int> WaitUntilExited(const RankKey& key) {
    const auto deadline = std::chrono::steady_clock::now() + testing::kEventTimeout;
    while (std::chrono::steady_clock::now() < deadline) {
      peer_.HandleExits(launcher_.Reap());
      const RankRecord* record = peer_.ranks().Find(key);
      if (record != nullptr && !record->live()) return record->exit_code;
      testing::PollReadable(launcher_.wakeup_fd(), std::chrono::seconds(1));
    }
    return std::nullopt;
  }

  testing::TempDir dir_;
  FakeClock clock_;
  PosixProcessLauncher launcher_{{.path_prefix = "/opt/sublet-test/bin"}};
  zmq::context_t context_;
  Worker worker_;
  WorkerTestPeer peer_{worker_};
};

TEST_F(WorkerProcessTest, RankSeesItsDevicesControlEndpointAndPathPrefix) {
  Launch({ShellRank(1, "echo \"$SUBLET_RANK|$CUDA_VISIBLE_DEVICES|$SUBLET_CONTROL\"; "
                       "echo \"$PATH\"; pwd")});
  ASSERT_EQ(WaitUntilExited(Key(1)), 0);
  const std::string log = testing::ReadFile(peer_.LogPath(Key(1)));
  EXPECT_THAT(log, HasSubstr("1|1|ipc://" + dir_.path() + "/control.sock\n"));
  EXPECT_THAT(log, HasSubstr("\n/opt/sublet-test/bin:"));
  EXPECT_THAT(log, HasSubstr("/jobs/9/attempt-1\n"));
  EXPECT_FALSE(std::filesystem::exists(dir_.path() + "/ranks/9.1.1.pid"));
}

TEST_F(WorkerProcessTest, ReportsExitCodesAndSignalDeaths) {
  Launch({ShellRank(0, "exit 7"), ShellRank(1, "kill -INT $$")});
  EXPECT_EQ(WaitUntilExited(Key(0)), 7);
  EXPECT_EQ(WaitUntilExited(Key(1)), 128 + SIGINT);
  EXPECT_TRUE(peer_.report_due());
}

TEST_F(WorkerProcessTest, AnUnrunnableCommandExits127WithTheReasonInItsLog) {
  RankLaunch launch = ShellRank(0, "");
  launch.command = {"sublet-definitely-not-installed", "--flag"};
  Launch({launch});
  EXPECT_EQ(WaitUntilExited(Key(0)), 127);
  EXPECT_THAT(testing::ReadFile(peer_.LogPath(Key(0))),
              HasSubstr("sublet-worker: cannot run sublet-definitely-not-installed: "));
}

// A rank that ignores SIGTERM, with a grandchild that ignores it too: after
// the grace, SIGKILL takes the whole process group.
TEST_F(WorkerProcessTest, StopEscalatesToSigkillForTheWholeProcessGroup) {
  // Orphans (the grandchild, once its shell dies) become our children, so we
  // can wait for the grandchild's death instead of polling for it.
  ASSERT_EQ(prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
  int ready[2];
  ASSERT_EQ(pipe(ready), 0);  // inherited by the rank: it reports its child's pid
  // Through /proc, not `>&$READY_FD`: dash refuses fd numbers above 9.
  RankLaunch launch =
      ShellRank(0, "trap '' TERM; sleep 1000 & echo $! > /proc/self/fd/$READY_FD; wait; wait");
  launch.env.push_back({"READY_FD", std::to_string(ready[1])});
  Launch({launch});
  close(ready[1]);
  char line[32] = {};
  ASSERT_TRUE(testing::PollReadable(ready[0], testing::kEventTimeout));
  ssize_t got;
  while ((got = read(ready[0], line, sizeof(line) - 1)) < 0 && errno == EINTR) {
  }
  ASSERT_GT(got, 0);
  close(ready[0]);
  const int grandchild = std::atoi(line);
  ASSERT_GT(grandchild, 0);

  Launch({});  // rank 0 is no longer desired: SIGTERM, ignored
  clock_.Advance(absl::Seconds(5));
  peer_.FireDueKills();
  EXPECT_EQ(WaitUntilExited(Key(0)), 128 + SIGKILL);

  int status = 0;
  const auto deadline = std::chrono::steady_clock::now() + testing::kEventTimeout;
  while (waitpid(grandchild, &status, WNOHANG) == 0 && std::chrono::steady_clock::now() < deadline) {
    launcher_.Reap();  // drains the SIGCHLD pipe
    testing::PollReadable(launcher_.wakeup_fd(), std::chrono::seconds(1));
  }
  prctl(PR_SET_CHILD_SUBREAPER, 0);
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << "status " << status;
}

// ---- the event loop against a fake coordinator ----------------------------

class WorkerEndToEndTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(server_.Bind("tcp://127.0.0.1:0").ok());
    worker_ = std::make_unique<Worker>(OptionsFor(dir_, server_.endpoint()), clock_, launcher_,
                                       context_);
    thread_ = std::thread([this] { run_status_ = worker_->Run(stop_); });
  }

  void TearDown() override { StopWorker(); }

  void StopWorker() {
    if (!thread_.joinable()) return;
    stop_ = true;
    thread_.join();
  }

  // The next envelope from the worker, waiting up to kEventTimeout.
  std::optional<protocols::Envelope> Receive() {
    const auto deadline = std::chrono::steady_clock::now() + testing::kEventTimeout;
    while (std::chrono::steady_clock::now() < deadline) {
      if (std::optional<protocols::Incoming> in = server_.TryReceive()) {
        EXPECT_TRUE(in->envelope.ok()) << in->envelope.status();
        if (!in->envelope.ok()) return std::nullopt;
        EXPECT_EQ(in->envelope->token, "node-token");
        peer_ = in->peer;
        return *std::move(in->envelope);
      }
      std::vector<zmq::pollitem_t> items = {{server_.socket().handle(), 0, ZMQ_POLLIN, 0}};
      try {
        zmq::poll(items, std::chrono::milliseconds(1000));
      } catch (const zmq::error_t& e) {
        if (e.num() != EINTR) throw;  // SIGCHLD from the worker's ranks
      }
    }
    return std::nullopt;
  }

  // Skips envelopes until a report satisfying `wanted` arrives.
  std::optional<WorkerReport> AwaitReport(const std::function<bool(const WorkerReport&)>& wanted) {
    while (std::optional<protocols::Envelope> envelope = Receive()) {
      const auto* report = std::get_if<WorkerReport>(&envelope->body);
      if (report != nullptr && wanted(*report)) return *report;
    }
    return std::nullopt;
  }

  bool SendToWorker(protocols::Body body, uint64_t request_id = 0) {
    protocols::Envelope envelope;
    envelope.request_id = request_id;
    envelope.body = std::move(body);
    return server_.Send(peer_, envelope).ok();
  }

  // Sends `body` with `request_id`; the reply to it, skipping reports.
  std::optional<protocols::Envelope> Call(uint64_t request_id, protocols::Body body) {
    EXPECT_TRUE(SendToWorker(std::move(body), request_id));
    while (std::optional<protocols::Envelope> envelope = Receive()) {
      if (!std::holds_alternative<WorkerReport>(envelope->body)) {
        EXPECT_EQ(envelope->request_id, request_id);
        return envelope;
      }
    }
    return std::nullopt;
  }

  testing::TempDir dir_;
  RealClock clock_;
  PosixProcessLauncher launcher_{{}};
  zmq::context_t context_;
  protocols::ServerChannel server_{context_};
  std::unique_ptr<Worker> worker_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
  absl::Status run_status_;
  std::string peer_;
};

bool AllExited(const WorkerReport& report, size_t count, int code) {
  if (report.ranks.size() != count) return false;
  return std::all_of(report.ranks.begin(), report.ranks.end(), [code](const RankStatus& rank) {
    return rank.exited && rank.exit_code == code;
  });
}

TEST_F(WorkerEndToEndTest, RegistersRunsRanksAndServesTheirLogs) {
  std::optional<WorkerReport> hello = AwaitReport([](const WorkerReport&) { return true; });
  ASSERT_TRUE(hello.has_value());
  EXPECT_EQ(hello->node, "node-e2e");
  EXPECT_EQ(hello->gpus.size(), 2u);
  EXPECT_EQ(hello->free_ports.size(), 8u);

  ASSERT_TRUE(SendToWorker(
      SyncFor(hello->incarnation,
              {ShellRank(0, "echo rank $SUBLET_RANK on $CUDA_VISIBLE_DEVICES"),
               ShellRank(1, "echo rank $SUBLET_RANK on $CUDA_VISIBLE_DEVICES")})));
  ASSERT_TRUE(AwaitReport([](const WorkerReport& r) { return AllExited(r, 2, 0); }).has_value());

  std::optional<protocols::Envelope> reply =
      Call(42, protocols::ReadRankLogRequest{.key = Key(1), .offset = 0});
  ASSERT_TRUE(reply.has_value());
  const auto* logs = std::get_if<protocols::LogsReply>(&reply->body);
  ASSERT_NE(logs, nullptr);
  EXPECT_EQ(logs->data, "rank 1 on 1\n");
  EXPECT_EQ(logs->next_offset, logs->data.size());
  EXPECT_TRUE(logs->complete);
}

// Ranks are hostile. Each rank's control token is its own (128 bits from
// getrandom, as hex); a frame bigger than any control message is dropped by
// libzmq (maxmsgsize) before it is buffered; a report under another rank's
// token is ignored; and the worker goes on taking honest reports.
TEST_F(WorkerEndToEndTest, HostileControlTrafficIsDroppedAndHonestReportsStillArrive) {
  std::optional<WorkerReport> hello = AwaitReport([](const WorkerReport&) { return true; });
  ASSERT_TRUE(hello.has_value());
  const std::string dir = dir_.path();
  auto rank = [&](uint32_t r) {
    return ShellRank(r, fmt::format("echo \"$SUBLET_CONTROL\" > {0}/endpoint-{1}.tmp && "
                                    "echo \"$SUBLET_CONTROL_TOKEN\" > {0}/token-{1}.tmp && "
                                    "mv {0}/endpoint-{1}.tmp {0}/endpoint-{1} && "
                                    "mv {0}/token-{1}.tmp {0}/token-{1}; sleep 600",
                                    dir, r));
  };
  ASSERT_TRUE(SendToWorker(SyncFor(hello->incarnation, {rank(0), rank(1)})));
  ASSERT_TRUE(AwaitReport([&](const WorkerReport&) {
                return access((dir + "/token-0").c_str(), F_OK) == 0 &&
                       access((dir + "/token-1").c_str(), F_OK) == 0;
              }).has_value());
  auto line = [](std::string text) { return text.substr(0, text.find('\n')); };
  const std::string endpoint = line(testing::ReadFile(dir + "/endpoint-0"));
  const std::string token0 = line(testing::ReadFile(dir + "/token-0"));
  const std::string token1 = line(testing::ReadFile(dir + "/token-1"));
  EXPECT_EQ(token0.size(), 32u);
  EXPECT_EQ(token0.find_first_not_of("0123456789abcdef"), std::string::npos) << token0;
  EXPECT_NE(token0, token1);

  zmq::socket_t flood(context_, zmq::socket_type::dealer);
  flood.set(zmq::sockopt::linger, 0);
  flood.connect(endpoint);
  ASSERT_TRUE(flood.send(zmq::buffer(std::string(1 << 20, 'x')), zmq::send_flags::none));
  ControlClient forged(context_, endpoint, token1, Key(0));  // rank 1 speaking for rank 0
  ControlClient honest(context_, endpoint, token0, Key(0));
  protocols::Progress progress;
  progress.step = 666;
  ASSERT_TRUE(forged.ReportProgress(progress).ok());
  progress.step = 7;
  ASSERT_TRUE(honest.ReportProgress(progress).ok());
  std::vector<int64_t> seen;
  ASSERT_TRUE(AwaitReport([&](const WorkerReport& r) {
                for (const RankStatus& status : r.ranks) {
                  if (status.key == Key(0) && status.progress.step >= 0) {
                    seen.push_back(status.progress.step);
                  }
                }
                return !seen.empty() && seen.back() == 7;
              }).has_value());
  for (int64_t step : seen) EXPECT_NE(step, 666) << "a forged report was applied";
}

TEST_F(WorkerEndToEndTest, AnswersAReadOfAMissingLogWithNotFound) {
  ASSERT_TRUE(AwaitReport([](const WorkerReport&) { return true; }).has_value());
  std::optional<protocols::Envelope> reply =
      Call(7, protocols::ReadRankLogRequest{.key = Key(5), .offset = 0});
  ASSERT_TRUE(reply.has_value());
  absl::Status status = protocols::StatusFromReply(*reply);
  EXPECT_TRUE(absl::IsNotFound(status)) << status;
  EXPECT_THAT(std::string(status.message()), HasSubstr("no log for job 9 attempt 1 rank 5"));
}

TEST_F(WorkerEndToEndTest, ForgetsAckedExitsInLaterReports) {
  std::optional<WorkerReport> hello = AwaitReport([](const WorkerReport&) { return true; });
  ASSERT_TRUE(hello.has_value());
  WorkerSync sync = SyncFor(hello->incarnation, {ShellRank(0, "exit 4")});
  ASSERT_TRUE(SendToWorker(sync));
  ASSERT_TRUE(AwaitReport([](const WorkerReport& r) { return AllExited(r, 1, 4); }).has_value());
  sync.acked_exits = {Key(0)};
  ASSERT_TRUE(SendToWorker(sync));
  EXPECT_TRUE(AwaitReport([](const WorkerReport& r) { return r.ranks.empty(); }).has_value());
}

TEST_F(WorkerEndToEndTest, StopsItsRanksOnShutdownAndSendsAFinalReport) {
  std::optional<WorkerReport> hello = AwaitReport([](const WorkerReport&) { return true; });
  ASSERT_TRUE(hello.has_value());
  ASSERT_TRUE(SendToWorker(SyncFor(hello->incarnation, {ShellRank(0, "exec sleep 1000")})));
  ASSERT_TRUE(AwaitReport([](const WorkerReport& r) {
                return r.ranks.size() == 1 && !r.ranks[0].exited;
              }).has_value());
  StopWorker();
  EXPECT_TRUE(run_status_.ok()) << run_status_;
  EXPECT_TRUE(AwaitReport([](const WorkerReport& r) { return AllExited(r, 1, 128 + SIGTERM); })
                  .has_value());
}

TEST(WorkerRunTest, RunsAndStopsWithoutACoordinator) {
  testing::TempDir dir;
  RealClock clock;
  PosixProcessLauncher launcher({});
  zmq::context_t context;
  Worker worker(OptionsFor(dir, "tcp://127.0.0.1:1"), clock, launcher, context);
  std::atomic<bool> stop{true};
  EXPECT_TRUE(worker.Run(stop).ok());
}

TEST(WorkerRunTest, FailsWhenTheControlSocketCannotBeBound) {
  testing::TempDir dir;
  const std::string deep = dir.path() + "/" + std::string(120, 'd');
  RealClock clock;
  PosixProcessLauncher launcher({});
  zmq::context_t context;
  Worker::Options options = OptionsFor(dir, "tcp://127.0.0.1:1");
  options.work_dir = deep;
  Worker worker(options, clock, launcher, context);
  std::atomic<bool> stop{true};
  absl::Status status = worker.Run(stop);
  EXPECT_TRUE(absl::IsUnavailable(status)) << status;
}

}  // namespace
}  // namespace sublet::worker

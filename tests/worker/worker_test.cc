// The Worker's steps driven directly, with a fake launcher and a fake clock
// (no processes, no sockets, no waiting).
#include "worker/worker.h"

#include <signal.h>

#include <filesystem>
#include <map>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/worker/test_util.h"
#include "tests/worker/worker_test_peer.h"
#include "worker/inventory.h"

namespace sublet::worker {
namespace {

using protocols::RankLaunch;
using protocols::RankStatus;
using protocols::WorkerSync;
using ::testing::Contains;
using ::testing::ElementsAre;
using ::testing::IsEmpty;
using ::testing::Pair;

class FakeLauncher final : public ProcessLauncher {
 public:
  absl::StatusOr<int> Launch(const LaunchSpec& spec) override {
    if (!fail_with.ok()) return fail_with;
    launches.push_back(spec);
    return next_pid++;
  }
  absl::Status SignalGroup(int pid, int signal) override {
    signals.emplace_back(pid, signal);
    return absl::OkStatus();
  }
  absl::Status Signal(int pid, int signal) override {
    process_signals.emplace_back(pid, signal);
    return absl::OkStatus();
  }
  std::vector<ProcessExit> Reap() override { return std::exchange(exits, {}); }
  int wakeup_fd() const override { return -1; }

  absl::Status fail_with;
  int next_pid = 1000;
  std::vector<LaunchSpec> launches;
  std::vector<std::pair<int, int>> signals;          // to process groups
  std::vector<std::pair<int, int>> process_signals;  // to the rank process only
  std::vector<ProcessExit> exits;
};

RankKey Key(uint32_t rank) { return RankKey{.job_id = 7, .attempt = 2, .rank = rank}; }

class WorkerTest : public ::testing::Test {
 protected:
  WorkerTest() : worker_(MakeOptions(), clock_, launcher_, context_) {
    EXPECT_TRUE(peer_.Prepare().ok());
  }

  Worker::Options MakeOptions() {
    return Worker::Options{.coordinator = "tcp://127.0.0.1:1",
                           .node = "node-a",
                           .token = "node-token",
                           .work_dir = dir_.path(),
                           .gpus = EmulatedGpus(4)};
  }

  WorkerSync Sync(std::vector<uint32_t> ranks, std::vector<RankKey> acked = {}) {
    WorkerSync sync;
    sync.incarnation = worker_.incarnation();
    sync.stop_grace_ms = 5000;
    for (uint32_t rank : ranks) {
      sync.desired.push_back(RankLaunch{.key = Key(rank),
                                        .command = {"sublet-train", "--steps", "3"},
                                        .env = {{"SUBLET_RANK", std::to_string(rank)}},
                                        .gpus = {2 * rank, 2 * rank + 1}});
    }
    sync.acked_exits = std::move(acked);
    return sync;
  }

  std::map<std::string, std::string> EnvOf(const LaunchSpec& spec) {
    return std::map<std::string, std::string>(spec.env.begin(), spec.env.end());
  }

  testing::TempDir dir_;
  FakeClock clock_;
  FakeLauncher launcher_;
  zmq::context_t context_;
  Worker worker_;
  WorkerTestPeer peer_{worker_};
};

TEST_F(WorkerTest, LaunchesARankWithItsEnvironmentDevicesAndFiles) {
  peer_.HandleSync(Sync({1}));
  ASSERT_EQ(launcher_.launches.size(), 1u);
  const LaunchSpec& spec = launcher_.launches[0];
  EXPECT_THAT(spec.argv, ElementsAre("sublet-train", "--steps", "3"));
  EXPECT_THAT(EnvOf(spec), Contains(Pair("SUBLET_RANK", "1")));
  EXPECT_THAT(EnvOf(spec), Contains(Pair("CUDA_VISIBLE_DEVICES", "2,3")));
  EXPECT_THAT(EnvOf(spec), Contains(Pair("SUBLET_CONTROL", "ipc://" + dir_.path() + "/control.sock")));
  EXPECT_EQ(spec.working_dir, dir_.path() + "/jobs/7/attempt-2");
  EXPECT_TRUE(std::filesystem::is_directory(spec.working_dir));
  EXPECT_EQ(spec.log_path, dir_.path() + "/jobs/7/attempt-2/rank-1.log");
  EXPECT_EQ(spec.pid_file, dir_.path() + "/ranks/7.2.1.pid");
  EXPECT_TRUE(peer_.ranks().IsLive(Key(1)));
}

TEST_F(WorkerTest, CreatesTheCheckpointDirectoryBeforeLaunching) {
  const std::string checkpoints = dir_ / "storage/acme/7/checkpoints";
  WorkerSync sync = Sync({0});
  sync.desired[0].env.push_back({"SUBLET_CHECKPOINT_DIR", checkpoints});
  peer_.HandleSync(sync);
  EXPECT_TRUE(std::filesystem::is_directory(checkpoints));
  EXPECT_EQ(launcher_.launches.size(), 1u);
}

TEST_F(WorkerTest, TakesARelativeCheckpointDirectoryFromTheRanksWorkingDirectory) {
  WorkerSync sync = Sync({0});
  sync.desired[0].env.push_back({"SUBLET_CHECKPOINT_DIR", "ckpt"});
  peer_.HandleSync(sync);
  EXPECT_TRUE(std::filesystem::is_directory(dir_ / "jobs/7/attempt-2/ckpt"));
}

TEST_F(WorkerTest, LaunchesEvenWhenTheCheckpointDirectoryCannotBeCreated) {
  testing::WriteFile(dir_ / "storage", "a file where a directory should be");
  WorkerSync sync = Sync({0});
  sync.desired[0].env.push_back({"SUBLET_CHECKPOINT_DIR", dir_ / "storage/acme/7/checkpoints"});
  peer_.HandleSync(sync);
  EXPECT_EQ(launcher_.launches.size(), 1u);
  EXPECT_TRUE(peer_.ranks().IsLive(Key(0)));
}

TEST_F(WorkerTest, IgnoresASyncForAnotherIncarnation) {
  WorkerSync sync = Sync({0});
  sync.incarnation = "not-" + worker_.incarnation();
  peer_.HandleSync(sync);
  EXPECT_THAT(launcher_.launches, IsEmpty());
}

TEST_F(WorkerTest, StopsAnUndesiredRankWithSigtermThenSigkillAfterTheGrace) {
  peer_.HandleSync(Sync({0}));
  peer_.HandleSync(Sync({}));
  EXPECT_THAT(launcher_.signals, ElementsAre(Pair(1000, SIGTERM)));
  clock_.Advance(absl::Milliseconds(4999));
  peer_.FireDueKills();
  EXPECT_EQ(launcher_.signals.size(), 1u);
  clock_.Advance(absl::Milliseconds(1));
  peer_.FireDueKills();
  EXPECT_THAT(launcher_.signals, ElementsAre(Pair(1000, SIGTERM), Pair(1000, SIGKILL)));
  peer_.FireDueKills();
  EXPECT_EQ(launcher_.signals.size(), 2u);
}

TEST_F(WorkerTest, APreemptionNoticeIsDeliveredOnceAndTheRankKilledAtTheDeadline) {
  peer_.HandleSync(Sync({0}));
  WorkerSync noticed = Sync({0});
  const absl::Time deadline = clock_.Now() + absl::Seconds(30);
  noticed.notices = {{Key(0), absl::ToUnixMillis(deadline), "reclaim 1"}};
  peer_.HandleSync(noticed);
  peer_.HandleSync(noticed);  // every sync repeats it; it is delivered once
  EXPECT_THAT(launcher_.process_signals, ElementsAre(Pair(1000, SIGUSR1)));
  EXPECT_THAT(launcher_.signals, IsEmpty()) << "the rank keeps running while it saves";
  clock_.Advance(absl::Seconds(29));
  peer_.FireDueKills();
  EXPECT_THAT(launcher_.signals, IsEmpty());
  clock_.Advance(absl::Seconds(1));
  peer_.FireDueKills();
  EXPECT_THAT(launcher_.signals, ElementsAre(Pair(1000, SIGKILL)));
}

TEST_F(WorkerTest, ARankThatCheckpointsAndExitsBeforeTheDeadlineIsNotKilled) {
  peer_.HandleSync(Sync({0}));
  WorkerSync noticed = Sync({0});
  noticed.notices = {{Key(0), absl::ToUnixMillis(clock_.Now() + absl::Seconds(5)), "reclaim 1"}};
  peer_.HandleSync(noticed);
  peer_.HandleExits({{.pid = 1000, .exit_code = 75}});
  clock_.Advance(absl::Seconds(10));
  peer_.FireDueKills();
  EXPECT_THAT(launcher_.signals, IsEmpty());
  EXPECT_THAT(peer_.BuildReport().ranks,
              ElementsAre(RankStatus{.key = Key(0), .exited = true, .exit_code = 75}));
}

TEST_F(WorkerTest, ANoticeForARankNotRunningHereIsIgnored) {
  WorkerSync noticed = Sync({});
  noticed.notices = {{Key(3), absl::ToUnixMillis(clock_.Now()), "reclaim 1"}};
  peer_.HandleSync(noticed);
  peer_.FireDueKills();
  EXPECT_THAT(launcher_.process_signals, IsEmpty());
  EXPECT_THAT(launcher_.signals, IsEmpty());
}

TEST_F(WorkerTest, ARankThatExitsWithinTheGraceIsNotKilled) {
  peer_.HandleSync(Sync({0}));
  peer_.HandleSync(Sync({}));
  peer_.HandleExits({{.pid = 1000, .exit_code = 128 + SIGTERM}});
  clock_.Advance(absl::Seconds(10));
  peer_.FireDueKills();
  EXPECT_THAT(launcher_.signals, ElementsAre(Pair(1000, SIGTERM)));
}

TEST_F(WorkerTest, AnExitMakesAReportDueAndStaysReportedUntilAcked) {
  peer_.HandleSync(Sync({0, 1}));
  EXPECT_FALSE(peer_.report_due());
  peer_.HandleExits({{.pid = 1001, .exit_code = 3}});
  EXPECT_TRUE(peer_.report_due());
  EXPECT_THAT(peer_.BuildReport().ranks,
              ElementsAre(RankStatus{.key = Key(0), .exited = false, .exit_code = 0},
                          RankStatus{.key = Key(1), .exited = true, .exit_code = 3}));
  peer_.HandleSync(Sync({0, 1}, {Key(1)}));
  EXPECT_THAT(peer_.BuildReport().ranks,
              ElementsAre(RankStatus{.key = Key(0), .exited = false, .exit_code = 0}));
  EXPECT_EQ(launcher_.launches.size(), 2u) << "an exited rank is never relaunched";
}

TEST_F(WorkerTest, ReportCarriesTheNodeInventoryAndFreePorts) {
  protocols::WorkerReport report = peer_.BuildReport();
  EXPECT_EQ(report.node, "node-a");
  EXPECT_EQ(report.incarnation, worker_.incarnation());
  EXPECT_EQ(report.address, "127.0.0.1");
  EXPECT_EQ(report.gpus, EmulatedGpus(4));
  EXPECT_EQ(report.free_ports.size(), 8u);
  EXPECT_THAT(report.ranks, IsEmpty());
}

TEST_F(WorkerTest, IncarnationsDifferBetweenWorkers) {
  Worker other(MakeOptions(), clock_, launcher_, context_);
  EXPECT_NE(other.incarnation(), worker_.incarnation());
  EXPECT_GE(worker_.incarnation().size(), 16u);
}

TEST_F(WorkerTest, AFailedLaunchIsReportedAsExit127WithWhy) {
  launcher_.fail_with = absl::InternalError("fork: out of memory");
  peer_.HandleSync(Sync({0}));
  EXPECT_TRUE(peer_.report_due());
  EXPECT_THAT(peer_.BuildReport().ranks,
              ElementsAre(RankStatus{.key = Key(0), .exited = true, .exit_code = 127,
                                     .message = "fork: out of memory"}));
}

// Ids start at 1; 0 names no job, so nothing is launched for it.
TEST_F(WorkerTest, RefusesJobIdZero) {
  WorkerSync sync = Sync({0});
  sync.desired[0].key.job_id = 0;
  peer_.HandleSync(sync);
  EXPECT_THAT(launcher_.launches, IsEmpty());
  EXPECT_THAT(peer_.BuildReport().ranks, ElementsAre(::testing::Field(&RankStatus::exit_code, 127)));
}

TEST_F(WorkerTest, ShutdownStopsEveryRankAndRefusesNewOnes) {
  peer_.HandleSync(Sync({0, 1}));
  peer_.BeginShutdown();
  EXPECT_THAT(launcher_.signals, ElementsAre(Pair(1000, SIGTERM), Pair(1001, SIGTERM)));
  peer_.HandleSync(Sync({0, 1, 2}));
  EXPECT_EQ(launcher_.launches.size(), 2u);
  clock_.Advance(absl::Seconds(5));
  peer_.FireDueKills();
  EXPECT_EQ(launcher_.signals.size(), 4u);
}

TEST_F(WorkerTest, ShutdownUsesTheLastGraceTheCoordinatorSent) {
  WorkerSync sync = Sync({0});
  sync.stop_grace_ms = 200;
  peer_.HandleSync(sync);
  peer_.BeginShutdown();
  clock_.Advance(absl::Milliseconds(200));
  peer_.FireDueKills();
  EXPECT_THAT(launcher_.signals, ElementsAre(Pair(1000, SIGTERM), Pair(1000, SIGKILL)));
}

// ---- logs ------------------------------------------------------------------

class WorkerLogTest : public WorkerTest {
 protected:
  void WriteLog(uint32_t rank, const std::string& text) {
    std::filesystem::create_directories(dir_.path() + "/jobs/7/attempt-2");
    testing::WriteFile(peer_.LogPath(Key(rank)), text);
  }
  absl::StatusOr<protocols::LogsReply> Read(uint32_t rank, uint64_t offset, uint32_t max_bytes) {
    return peer_.ReadRankLog({.key = Key(rank), .offset = offset, .max_bytes = max_bytes});
  }
};

TEST_F(WorkerLogTest, ReadsFromAnOffsetUpToMaxBytes) {
  WriteLog(0, "hello world\n");
  absl::StatusOr<protocols::LogsReply> reply = Read(0, 6, 5);
  ASSERT_TRUE(reply.ok()) << reply.status();
  EXPECT_EQ(reply->data, "world");
  EXPECT_EQ(reply->next_offset, 11u);
  EXPECT_FALSE(reply->complete);
}

TEST_F(WorkerLogTest, IsCompleteAtTheEndOfAnExitedRanksLog) {
  WriteLog(0, "done\n");
  absl::StatusOr<protocols::LogsReply> reply = Read(0, 0, 1 << 20);
  ASSERT_TRUE(reply.ok());
  EXPECT_EQ(reply->data, "done\n");
  EXPECT_TRUE(reply->complete);
}

TEST_F(WorkerLogTest, IsNeverCompleteWhileTheRankRuns) {
  peer_.HandleSync(Sync({0}));
  WriteLog(0, "step 1\n");
  absl::StatusOr<protocols::LogsReply> reply = Read(0, 0, 1 << 20);
  ASSERT_TRUE(reply.ok());
  EXPECT_EQ(reply->next_offset, 7u);
  EXPECT_FALSE(reply->complete);
}

TEST_F(WorkerLogTest, CapsAReadAtOneMebibyte) {
  WriteLog(0, std::string((1 << 20) + 100, 'x'));
  absl::StatusOr<protocols::LogsReply> reply = Read(0, 0, 8 << 20);
  ASSERT_TRUE(reply.ok());
  EXPECT_EQ(reply->data.size(), 1u << 20);
  EXPECT_FALSE(reply->complete);
}

TEST_F(WorkerLogTest, AnOffsetPastTheEndReadsNothing) {
  WriteLog(0, "abc");
  absl::StatusOr<protocols::LogsReply> reply = Read(0, 10, 100);
  ASSERT_TRUE(reply.ok());
  EXPECT_EQ(reply->data, "");
  EXPECT_EQ(reply->next_offset, 10u);
}

TEST_F(WorkerLogTest, AMissingLogIsNotFoundNamingTheRank) {
  absl::StatusOr<protocols::LogsReply> reply = Read(3, 0, 100);
  EXPECT_TRUE(absl::IsNotFound(reply.status()));
  EXPECT_EQ(reply.status().message(), "no log for job 7 attempt 2 rank 3 on node node-a");
}

TEST_F(WorkerLogTest, RefusesJobIdZero) {
  absl::StatusOr<protocols::LogsReply> reply =
      peer_.ReadRankLog({.key = {.job_id = 0, .attempt = 1, .rank = 0}});
  EXPECT_TRUE(absl::IsInvalidArgument(reply.status()));
  EXPECT_EQ(reply.status().message(), "bad job id 0: ids start at 1");
}

}  // namespace
}  // namespace sublet::worker

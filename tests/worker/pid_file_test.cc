#include "worker/pid_file.h"

#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <map>
#include <thread>

#include <gtest/gtest.h>

#include "absl/strings/numbers.h"
#include "tests/worker/test_util.h"
#include "worker/process_launcher.h"

namespace sublet::worker {
namespace {

using testing::ReadFile;
using testing::TempDir;
using testing::WaitForExit;
using testing::WriteFile;

class LeftoverRanksTest : public ::testing::Test {
 protected:
  void SetUp() override { std::filesystem::create_directories(ranks_dir()); }
  std::string ranks_dir() const { return dir_ / "ranks"; }

  // A rank "left behind by a previous worker": a process group of a shell
  // and a sleeping child, recorded in ranks/.
  int StartLeftover(const std::string& name) {
    LaunchSpec spec;
    spec.argv = {"/bin/sh", "-c", "sleep 1000 & wait"};
    spec.working_dir = dir_.path();
    spec.log_path = dir_ / "leftover.log";
    spec.pid_file = ranks_dir() + "/" + name;
    absl::StatusOr<int> pid = previous_worker_.Launch(spec);
    EXPECT_TRUE(pid.ok()) << pid.status();
    return pid.value_or(0);
  }

  TempDir dir_;
  PosixProcessLauncher previous_worker_{{}};
};

TEST_F(LeftoverRanksTest, KillsARankRecordedByAPreviousWorker) {
  const int pid = StartLeftover("1.1.0.pid");
  ASSERT_GT(pid, 0);
  EXPECT_EQ(KillLeftoverRanks(ranks_dir()), 1);
  EXPECT_EQ(WaitForExit(previous_worker_, pid), 128 + SIGKILL);
  EXPECT_TRUE(std::filesystem::is_empty(ranks_dir()));
}

// The members of process group `pgid` and their states (field 3 of
// /proc/<pid>/stat).
std::map<int, char> GroupMembers(int pgid) {
  std::map<int, char> members;
  for (const auto& entry : std::filesystem::directory_iterator("/proc")) {
    int pid = 0;
    if (!absl::SimpleAtoi(entry.path().filename().string(), &pid)) continue;
    const std::string stat = ReadFile(entry.path() / "stat");
    const size_t paren = stat.rfind(')');
    if (paren == std::string::npos) continue;
    char state = 0;
    int ppid = 0, pgrp = 0;
    if (std::sscanf(stat.c_str() + paren + 2, "%c %d %d", &state, &ppid, &pgrp) == 3 &&
        pgrp == pgid) {
      members[pid] = state;
    }
  }
  return members;
}

TEST_F(LeftoverRanksTest, ReturnsOnlyOnceEveryProcessOfTheGroupHasExited) {
  // One member holds 512 MiB, which the kernel takes a while to tear down
  // after SIGKILL: returning right after kill() would find it still exiting,
  // still holding its memory (and, for a rank, its GPUs).
  LaunchSpec spec;
  spec.argv = {"/bin/sh", "-c",
               "sleep 1000 & exec /usr/bin/python3 -c 'import time; b = b\"x\" * (512 << 20); "
               "print(\"ready\", flush=True); time.sleep(1000)'"};
  spec.working_dir = dir_.path();
  spec.log_path = dir_ / "leftover.log";
  spec.pid_file = ranks_dir() + "/1.1.0.pid";
  absl::StatusOr<int> pid = previous_worker_.Launch(spec);
  ASSERT_TRUE(pid.ok()) << pid.status();
  const auto deadline = std::chrono::steady_clock::now() + testing::kEventTimeout;
  while (ReadFile(dir_ / "leftover.log").find("ready") == std::string::npos) {
    ASSERT_LT(std::chrono::steady_clock::now(), deadline) << ReadFile(dir_ / "leftover.log");
    std::this_thread::sleep_for(std::chrono::milliseconds(10));  // polls the condition
  }
  const std::map<int, char> before = GroupMembers(*pid);
  ASSERT_EQ(before.size(), 2u);  // python and the sleep
  EXPECT_EQ(KillLeftoverRanks(ranks_dir()), 1);
  // At once, with no waiting here: each member is gone or a zombie.
  for (const auto& [member, state] : GroupMembers(*pid)) {
    EXPECT_TRUE(state == 'Z' || state == 'X') << "pid " << member << " is in state " << state;
  }
  EXPECT_EQ(WaitForExit(previous_worker_, *pid), 128 + SIGKILL);
}

TEST_F(LeftoverRanksTest, SparesAProcessWhoseStartTimeDiffers) {
  const int pid = StartLeftover("1.1.0.pid");
  ASSERT_GT(pid, 0);
  // The pid was "reused": same number, different process.
  const uint64_t start_time = ProcessStartTime(pid).value();
  WriteFile(ranks_dir() + "/1.1.0.pid",
            std::to_string(pid) + " " + std::to_string(start_time + 1) + "\n");
  EXPECT_EQ(KillLeftoverRanks(ranks_dir()), 0);
  EXPECT_TRUE(std::filesystem::is_empty(ranks_dir()));
  EXPECT_EQ(kill(pid, 0), 0) << "the process must still be alive";
  ASSERT_TRUE(previous_worker_.SignalGroup(pid, SIGKILL).ok());
  EXPECT_EQ(WaitForExit(previous_worker_, pid), 128 + SIGKILL);
}

TEST_F(LeftoverRanksTest, DeletesMalformedAndStaleFiles) {
  WriteFile(ranks_dir() + "/garbage.pid", "not a pid\n");
  WriteFile(ranks_dir() + "/negative.pid", "-5 10\n");
  WriteFile(ranks_dir() + "/gone.pid", "999999999 12345\n");
  EXPECT_EQ(KillLeftoverRanks(ranks_dir()), 0);
  EXPECT_TRUE(std::filesystem::is_empty(ranks_dir()));
}

TEST_F(LeftoverRanksTest, AMissingDirectoryHoldsNoLeftovers) {
  EXPECT_EQ(KillLeftoverRanks(dir_ / "no-such-dir"), 0);
}

TEST(PidFileTest, ReadsWhatItWrote) {
  TempDir dir;
  ASSERT_TRUE(WritePidFile(dir / "self.pid", getpid()).ok());
  absl::StatusOr<PidRecord> record = ReadPidFile(dir / "self.pid");
  ASSERT_TRUE(record.ok()) << record.status();
  EXPECT_EQ(record->pid, getpid());
  EXPECT_EQ(record->start_time, ProcessStartTime(getpid()).value());
}

TEST(PidFileTest, ReadErrorsNameTheCause) {
  TempDir dir;
  EXPECT_TRUE(absl::IsNotFound(ReadPidFile(dir / "missing.pid").status()));
  WriteFile(dir / "bad.pid", "12 x\n");
  EXPECT_TRUE(absl::IsDataLoss(ReadPidFile(dir / "bad.pid").status()));
}

TEST(PidFileTest, StartTimeOfAMissingProcessIsNotFound) {
  EXPECT_TRUE(absl::IsNotFound(ProcessStartTime(999999999).status()));
}

}  // namespace
}  // namespace sublet::worker

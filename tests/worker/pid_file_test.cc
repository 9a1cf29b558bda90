#include "worker/pid_file.h"

#include <signal.h>
#include <unistd.h>

#include <filesystem>

#include <gtest/gtest.h>

#include "tests/worker/test_util.h"
#include "worker/process_launcher.h"

namespace sublet::worker {
namespace {

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

#include "worker/process_launcher.h"

#include <signal.h>
#include <unistd.h>

#include <filesystem>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "common/exit_codes.h"
#include "tests/worker/test_util.h"
#include "worker/pid_file.h"

namespace sublet::worker {
namespace {

using testing::ReadFile;
using testing::TempDir;
using testing::WaitForExit;
using ::testing::HasSubstr;

class PosixProcessLauncherTest : public ::testing::Test {
 protected:
  LaunchSpec Shell(const std::string& script) { return testing::ShellSpec(dir_, script); }

  // Runs `spec` to completion and returns its exit code (-1 on timeout).
  int RunToExit(const LaunchSpec& spec) {
    absl::StatusOr<int> pid = launcher_.Launch(spec);
    EXPECT_TRUE(pid.ok()) << pid.status();
    if (!pid.ok()) return -1;
    return WaitForExit(launcher_, *pid).value_or(-1);
  }

  TempDir dir_;
  PosixProcessLauncher launcher_{{.path_prefix = "/opt/sublet-test/bin"}};
};

TEST_F(PosixProcessLauncherTest, WritesStdoutAndStderrToTheLog) {
  EXPECT_EQ(RunToExit(Shell("echo out; echo err >&2")), 0);
  EXPECT_EQ(ReadFile(dir_ / "out.log"), "out\nerr\n");
}

TEST_F(PosixProcessLauncherTest, AppendsToAnExistingLog) {
  testing::WriteFile(dir_ / "out.log", "before\n");
  EXPECT_EQ(RunToExit(Shell("echo after")), 0);
  EXPECT_EQ(ReadFile(dir_ / "out.log"), "before\nafter\n");
}

TEST_F(PosixProcessLauncherTest, ChildSeesOverlaidEnvironmentAndPathPrefix) {
  setenv("TEST_INHERITED", "from-parent", 1);
  setenv("TEST_OVERRIDDEN", "old", 1);
  LaunchSpec spec =
      Shell("echo \"$TEST_INHERITED $TEST_OVERRIDDEN $TEST_NEW\"; "
            "echo \"$PATH\"");
  spec.env = {{"TEST_OVERRIDDEN", "new"}, {"TEST_NEW", "added"}};
  EXPECT_EQ(RunToExit(spec), 0);
  const std::string log = ReadFile(dir_ / "out.log");
  EXPECT_THAT(log, HasSubstr("from-parent new added\n"));
  EXPECT_THAT(log, HasSubstr("\n/opt/sublet-test/bin:"));
}

TEST_F(PosixProcessLauncherTest, ResolvesTheCommandOnThePrefixedPath) {
  std::filesystem::create_directories(dir_ / "bin");
  testing::WriteFile(dir_ / "bin/sublet-fake-tool", "#!/bin/sh\necho tool ran\n");
  std::filesystem::permissions(dir_ / "bin/sublet-fake-tool", std::filesystem::perms::owner_all);
  PosixProcessLauncher launcher({.path_prefix = dir_ / "bin"});
  LaunchSpec spec = Shell("");
  spec.argv = {"sublet-fake-tool"};
  absl::StatusOr<int> pid = launcher.Launch(spec);
  ASSERT_TRUE(pid.ok()) << pid.status();
  EXPECT_EQ(WaitForExit(launcher, *pid), 0);
  EXPECT_EQ(ReadFile(dir_ / "out.log"), "tool ran\n");
}

TEST_F(PosixProcessLauncherTest, RunsInTheWorkingDirectoryWithStdinClosed) {
  std::filesystem::create_directories(dir_ / "wd");
  LaunchSpec spec = Shell("pwd; cat; echo done");
  spec.working_dir = dir_ / "wd";
  EXPECT_EQ(RunToExit(spec), 0);
  EXPECT_EQ(ReadFile(dir_ / "out.log"),
            std::filesystem::canonical(dir_ / "wd").string() + "\ndone\n");
}

TEST_F(PosixProcessLauncherTest, ReportsTheExitStatus) {
  EXPECT_EQ(RunToExit(Shell("exit 3")), 3);
}

TEST_F(PosixProcessLauncherTest, ReportsDeathBySignalAs128PlusSignal) {
  EXPECT_EQ(RunToExit(Shell("kill -TERM $$")), 128 + SIGTERM);
  EXPECT_EQ(RunToExit(Shell("kill -KILL $$")), 128 + SIGKILL);
}

TEST_F(PosixProcessLauncherTest, RunsEachChildInItsOwnProcessGroup) {
  EXPECT_EQ(RunToExit(Shell("test \"$(cut -d' ' -f5 /proc/$$/stat)\" = \"$$\"")), 0);
}

TEST_F(PosixProcessLauncherTest, ExecFailureExits127WithAMessageInTheLog) {
  LaunchSpec spec = Shell("");
  spec.argv = {"sublet-no-such-command"};
  EXPECT_EQ(RunToExit(spec), 127);
  EXPECT_THAT(ReadFile(dir_ / "out.log"),
              HasSubstr("sublet-worker: cannot run sublet-no-such-command: No such file"));
}

TEST_F(PosixProcessLauncherTest, MissingWorkingDirectoryExits127WithAMessage) {
  LaunchSpec spec = Shell("true");
  spec.working_dir = dir_ / "missing";
  EXPECT_EQ(RunToExit(spec), 127);
  EXPECT_THAT(ReadFile(dir_ / "out.log"), HasSubstr("cannot enter"));
}

TEST_F(PosixProcessLauncherTest, RefusesAnEmptyCommand) {
  LaunchSpec spec = Shell("");
  spec.argv.clear();
  EXPECT_TRUE(absl::IsInvalidArgument(launcher_.Launch(spec).status()));
}

TEST_F(PosixProcessLauncherTest, FailsWhenTheLogCannotBeOpened) {
  LaunchSpec spec = Shell("true");
  spec.log_path = dir_ / "no-such-dir/out.log";
  absl::StatusOr<int> pid = launcher_.Launch(spec);
  EXPECT_TRUE(absl::IsInternal(pid.status())) << pid.status();
}

TEST_F(PosixProcessLauncherTest, WritesThePidFileAndRemovesItOnExit) {
  LaunchSpec spec = Shell("exec sleep 1000");
  spec.pid_file = dir_ / "rank.pid";
  absl::StatusOr<int> pid = launcher_.Launch(spec);
  ASSERT_TRUE(pid.ok()) << pid.status();
  absl::StatusOr<PidRecord> record = ReadPidFile(spec.pid_file);
  ASSERT_TRUE(record.ok()) << record.status();
  EXPECT_EQ(record->pid, *pid);
  EXPECT_EQ(record->start_time, ProcessStartTime(*pid).value());
  ASSERT_TRUE(launcher_.SignalGroup(*pid, SIGKILL).ok());
  EXPECT_EQ(WaitForExit(launcher_, *pid), 128 + SIGKILL);
  EXPECT_FALSE(std::filesystem::exists(spec.pid_file));
}

TEST_F(PosixProcessLauncherTest, RunsNothingUnlessThePidFileWasWritten) {
  LaunchSpec spec = Shell("echo ran");
  spec.pid_file = std::string(dir_ / "missing-dir") + "/rank.pid";
  EXPECT_FALSE(launcher_.Launch(spec).ok());
  // The child was forked but must leave without exec: wait for its exit.
  std::vector<ProcessExit> exits;
  const auto deadline = std::chrono::steady_clock::now() + testing::kEventTimeout;
  while ((exits = launcher_.Reap()).empty() && std::chrono::steady_clock::now() < deadline) {
    testing::PollReadable(launcher_.wakeup_fd(), std::chrono::seconds(1));  // SIGCHLD wakes it
  }
  ASSERT_EQ(exits.size(), 1u);
  EXPECT_EQ(exits[0].exit_code, 126);
  EXPECT_THAT(ReadFile(dir_ / "out.log"), ::testing::Not(HasSubstr("ran")));
}

TEST_F(PosixProcessLauncherTest, AChildThatIsNeverReleasedSaysWhyInItsLog) {
  LaunchSpec spec = Shell("echo executed");
  spec.pid_file = std::string(dir_ / "missing-dir") + "/rank.pid";
  EXPECT_FALSE(launcher_.Launch(spec).ok());
  std::vector<ProcessExit> exits;
  while (exits.empty() && testing::PollReadable(launcher_.wakeup_fd(), testing::kEventTimeout)) {
    exits = launcher_.Reap();
  }
  ASSERT_EQ(exits.size(), 1u);
  EXPECT_EQ(exits[0].exit_code, kExitCannotExecute);
  EXPECT_EQ(ReadFile(dir_ / "out.log"),
            "sublet-worker: cannot set up the process: the worker closed the go-pipe before "
            "recording the pid\n");
}

TEST_F(PosixProcessLauncherTest, AParentSideFailureNamesTheStep) {
  LaunchSpec spec = Shell("true");
  spec.log_path = dir_ / "no-such-dir/out.log";
  EXPECT_THAT(launcher_.Launch(spec).status().message(),
              HasSubstr("open log " + spec.log_path + ": No such file"));
}

TEST_F(PosixProcessLauncherTest, SignalGroupOfAGoneProcessIsNotFound) {
  absl::StatusOr<int> pid = launcher_.Launch(Shell("true"));
  ASSERT_TRUE(pid.ok());
  ASSERT_EQ(WaitForExit(launcher_, *pid), 0);
  EXPECT_TRUE(absl::IsNotFound(launcher_.SignalGroup(*pid, SIGTERM)));
}

TEST(MergeEnvironmentTest, OverlaysReplacesAppendsAndPrefixesPath) {
  EXPECT_THAT(MergeEnvironment({"A=1", "PATH=/bin", "B=2"}, {{"B", "3"}, {"C", "4"}}, "/x"),
              ::testing::ElementsAre("A=1", "PATH=/x:/bin", "B=3", "C=4"));
}

TEST(MergeEnvironmentTest, PrefixesTheOverlaidPathAndLeavesPathAloneWithoutPrefix) {
  EXPECT_THAT(MergeEnvironment({"PATH=/bin"}, {{"PATH", "/job"}}, "/x"),
              ::testing::ElementsAre("PATH=/x:/job"));
  EXPECT_THAT(MergeEnvironment({"PATH=/bin"}, {}, ""), ::testing::ElementsAre("PATH=/bin"));
}

TEST(MergeEnvironmentTest, DropsTheWorkersOwnSubletSettings) {
  EXPECT_THAT(MergeEnvironment({"SUBLET_TOKEN=node-token", "SUBLET_COORDINATOR=tcp://x", "A=1"},
                               {{"SUBLET_RANK", "0"}}, ""),
              ::testing::ElementsAre("A=1", "SUBLET_RANK=0"));
}

TEST(ExitCodeTest, MapsWaitStatuses) {
  EXPECT_EQ(ExitCodeFromWaitStatus(3 << 8), 3);
  EXPECT_EQ(ExitCodeFromWaitStatus(SIGKILL), 128 + SIGKILL);
}

}  // namespace
}  // namespace sublet::worker

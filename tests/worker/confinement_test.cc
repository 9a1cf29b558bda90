// The launcher's use of a Confinement: Prepare before fork (its error fails
// the launch), Apply in the child before exec (its error ends the child,
// fail-closed, with the reason in the log).
#include "worker/confinement.h"

#include <errno.h>
#include <unistd.h>

#include <filesystem>
#include <memory>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "common/exit_codes.h"
#include "tests/worker/test_util.h"
#include "worker/process_launcher.h"

namespace sublet::worker {
namespace {

using testing::ReadFile;
using testing::TempDir;
using testing::WaitForExit;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;

// Apply writes a marker to stderr (the log by then) and returns `result`.
class FakePrepared final : public PreparedConfinement {
 public:
  explicit FakePrepared(ChildStepStatus result) : result_(result) {}
  ChildStepStatus Apply() noexcept override {
    static constexpr char kMarker[] = "confinement applied\n";
    (void)!write(STDERR_FILENO, kMarker, sizeof(kMarker) - 1);
    return result_;
  }

 private:
  ChildStepStatus result_;
};

class FakeConfinement final : public Confinement {
 public:
  absl::StatusOr<std::unique_ptr<PreparedConfinement>> Prepare(const LaunchSpec& spec) override {
    prepared_commands.push_back(spec.argv);
    if (!prepare_error.ok()) return prepare_error;
    return std::make_unique<FakePrepared>(apply_result);
  }

  absl::Status prepare_error;
  ChildStepStatus apply_result;
  std::vector<std::vector<std::string>> prepared_commands;
};

class ConfinedLaunchTest : public ::testing::Test {
 protected:
  LaunchSpec Shell(const std::string& script) { return testing::ShellSpec(dir_, script); }

  TempDir dir_;
  FakeConfinement confinement_;
  PosixProcessLauncher launcher_{{.confinement = &confinement_}};
};

TEST_F(ConfinedLaunchTest, AppliesThePreparedConfinementInTheChildBeforeExec) {
  absl::StatusOr<int> pid = launcher_.Launch(Shell("echo executed"));
  ASSERT_TRUE(pid.ok()) << pid.status();
  EXPECT_EQ(WaitForExit(launcher_, *pid), 0);
  EXPECT_EQ(ReadFile(dir_ / "out.log"), "confinement applied\nexecuted\n");
  EXPECT_THAT(confinement_.prepared_commands,
              ElementsAre(ElementsAre("/bin/sh", "-c", "echo executed")));
}

TEST_F(ConfinedLaunchTest, AFailedPrepareFailsTheLaunchBeforeAnythingIsForked) {
  confinement_.prepare_error = absl::PermissionDeniedError("no such tenant user");
  absl::StatusOr<int> pid = launcher_.Launch(Shell("echo executed"));
  EXPECT_EQ(pid.status(), confinement_.prepare_error);
  EXPECT_FALSE(std::filesystem::exists(dir_ / "out.log")) << "the child would have needed it";
  EXPECT_TRUE(launcher_.Reap().empty());
}

TEST_F(ConfinedLaunchTest, AFailedApplyExits126WithTheStepInTheLog) {
  confinement_.apply_result = {.step = "setresuid", .error = EPERM};
  absl::StatusOr<int> pid = launcher_.Launch(Shell("echo executed"));
  ASSERT_TRUE(pid.ok()) << pid.status();
  EXPECT_EQ(WaitForExit(launcher_, *pid), kExitCannotExecute);
  const std::string log = ReadFile(dir_ / "out.log");
  EXPECT_THAT(log, HasSubstr("sublet-worker: cannot set up the process: setresuid: "
                             "Operation not permitted\n"));
  EXPECT_THAT(log, Not(HasSubstr("executed")));
}

TEST_F(ConfinedLaunchTest, AFailedApplyWithoutAnErrnoNamesOnlyTheStep) {
  confinement_.apply_result = {.step = "device list is empty"};
  absl::StatusOr<int> pid = launcher_.Launch(Shell("echo executed"));
  ASSERT_TRUE(pid.ok()) << pid.status();
  EXPECT_EQ(WaitForExit(launcher_, *pid), kExitCannotExecute);
  EXPECT_THAT(ReadFile(dir_ / "out.log"),
              HasSubstr("sublet-worker: cannot set up the process: device list is empty\n"));
}

TEST(NoConfinementTest, RunsTheCommandUnchanged) {
  TempDir dir;
  NoConfinement none;
  PosixProcessLauncher launcher({.confinement = &none});
  LaunchSpec spec{.argv = {"/bin/sh", "-c", "echo plain"},
                  .working_dir = dir.path(),
                  .log_path = dir / "out.log"};
  absl::StatusOr<int> pid = launcher.Launch(spec);
  ASSERT_TRUE(pid.ok()) << pid.status();
  EXPECT_EQ(WaitForExit(launcher, *pid), 0);
  EXPECT_EQ(ReadFile(dir / "out.log"), "plain\n");
}

TEST(NoConfinementTest, PreparesAPlanThatAppliesNothing) {
  NoConfinement none;
  absl::StatusOr<std::unique_ptr<PreparedConfinement>> plan = none.Prepare(LaunchSpec{});
  ASSERT_TRUE(plan.ok()) << plan.status();
  ASSERT_NE(*plan, nullptr);
  EXPECT_TRUE((*plan)->Apply().ok());
}

}  // namespace
}  // namespace sublet::worker

// End to end: `sublet logs -f` outlives a coordinator restart. The rank goes
// on while the coordinator is down; the follower waits, reconnects, prints
// what the rank wrote after the restart and exits 0 when the job ends.
#include <signal.h>
#include <sys/wait.h>

#include <chrono>
#include <fstream>
#include <sstream>
#include <thread>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/e2e/test_cluster.h"

namespace sublet::e2e {
namespace {

using ::testing::HasSubstr;

constexpr auto kDeadline = std::chrono::seconds(60);
constexpr auto kPollEvery = std::chrono::milliseconds(50);

// The exit code of `pid`, or -1 (after killing it) at the deadline.
int WaitForExit(pid_t pid) {
  const auto deadline = std::chrono::steady_clock::now() + kDeadline;
  int status = 0;
  while (waitpid(pid, &status, WNOHANG) == 0) {
    if (std::chrono::steady_clock::now() >= deadline) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      return -1;
    }
    std::this_thread::sleep_for(kPollEvery);
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

TEST(LogsE2eTest, FollowOutlivesACoordinatorRestartAndExitsZeroWhenTheJobEnds) {
  TestCluster::Options options;
  options.workers = 1;
  options.gpus = 1;
  TestCluster cluster(options);
  // The rank prints, then waits for the test to let it go on.
  const std::string go = cluster.shared_dir() + "/go";
  const std::string id = cluster.Submit(cluster.WriteSpec(
      "follow", "name: follow\nresources: {nodes: 1, gpus_per_node: 1}\ncommand: [sh, -c, \""
                "echo before the restart; while [ ! -e " + go +
                " ]; do sleep 0.05; done; echo after the restart\"]\n"));
  cluster.WaitForState(id, "running");

  const std::string out = cluster.dir() + "/follow.out", err = cluster.dir() + "/follow.err";
  const pid_t follower =
      SpawnTo({Bin("sublet"), "--coordinator", cluster.endpoint(), "--token", "acme-token",
               "--timeout", "1s", "logs", "-f", id},
              {{"XDG_CONFIG_HOME", cluster.dir() + "/xdg"},
               {"HOME", cluster.dir()},
               {"SUBLET_COORDINATOR_KEY", cluster.coordinator_key()}},
              out, err);
  ASSERT_GT(follower, 0);
  ASSERT_TRUE(WaitForText(out, "before the restart\n")) << ReadFile(err);

  cluster.KillCoordinator(SIGKILL);
  ASSERT_TRUE(WaitForText(err, "coordinator unreachable, retrying...")) << ReadFile(err);
  cluster.StartCoordinator();
  std::ofstream(go) << "go\n";

  EXPECT_EQ(WaitForExit(follower), 0) << ReadFile(err);
  EXPECT_EQ(ReadFile(out), "before the restart\nafter the restart\n");
  EXPECT_EQ(cluster.WaitForState(id, "succeeded")["attempt"], 1) << "the rank ran through";
}

}  // namespace
}  // namespace sublet::e2e

// SIGKILL at random points of a save, many times over: the newest committed
// checkpoint always loads, with exactly the bytes saved at its step.
//
// A forked child saves steps in a loop through a FaultyFileSystem that
// kills the process at a chosen filesystem call (mid-write for appends);
// the call number is drawn from a seeded generator, so a failure replays.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <random>

#include "tests/checkpoint/test_util.h"

namespace sublet::checkpoint::testing {
namespace {

constexpr int kIterations = 40;
constexpr int kSavesPerChild = 3;

// The child: saves the next kSavesPerChild steps at DP2 x TP1, keeping 2.
[[noreturn]] void SaveUntilKilled(const std::string& dir, int64_t first_step, int64_t crash_at) {
  FaultyFileSystem fs;
  fs.crash_at_op = crash_at;
  for (int64_t step = first_step; step < first_step + kSavesPerChild; ++step) {
    if (!SaveWorld(fs, dir, 2, 1, step, /*keep=*/2).ok()) _exit(3);
  }
  _exit(0);
}

TEST(CrashTest, NewestCommittedCheckpointAlwaysLoads) {
  ScratchDir dir;
  PosixFileSystem fs;
  std::mt19937_64 rng(20261126);
  int64_t next_step = 1;
  int killed = 0;
  for (int i = 0; i < kIterations; ++i) {
    // ~30 mutating calls per save at this size: most draws land inside one.
    const int64_t crash_at = 1 + static_cast<int64_t>(rng() % (30 * kSavesPerChild));
    const pid_t child = fork();
    ASSERT_GE(child, 0);
    if (child == 0) SaveUntilKilled(dir.path(), next_step, crash_at);
    int status = 0;
    ASSERT_EQ(waitpid(child, &status, 0), child);
    const bool was_killed = WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL;
    ASSERT_TRUE(was_killed || (WIFEXITED(status) && WEXITSTATUS(status) == 0))
        << "iteration " << i << " status " << status;
    killed += was_killed;

    absl::StatusOr<std::vector<CheckpointInfo>> list = ListCheckpoints(fs, dir.path());
    ASSERT_TRUE(list.ok());
    int64_t newest = -1;
    for (const CheckpointInfo& info : *list) {
      // A step directory only ever appears whole: renamed with COMMIT inside.
      EXPECT_EQ(info.state, CheckpointState::kCommitted) << info.path << ": " << info.problem;
      newest = std::max(newest, info.step);
    }
    WorldLoad load = LoadWorld(fs, dir.path(), 1, 1);
    if (newest < 0) {
      EXPECT_TRUE(absl::IsNotFound(load.status)) << load.status;
      continue;
    }
    ASSERT_TRUE(load.status.ok()) << "iteration " << i << ": " << load.status;
    EXPECT_EQ(load.result.step, newest) << "iteration " << i;
    EXPECT_TRUE(load.all_hold_step) << "iteration " << i;
    next_step = newest + 1;
  }
  // The draw must actually interrupt saves, or the test proves nothing.
  EXPECT_GT(killed, kIterations / 2);
}

}  // namespace
}  // namespace sublet::checkpoint::testing

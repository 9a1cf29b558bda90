// sublet-train end to end: real processes under mpirun, compared through
// their --log-json lines and checkpoint files.
//
// Tolerance across topologies: the runs differ only in reduction order (data
// ranks sum their gradients, tensor ranks split GEMM contractions and sum
// partial products), each step's float rounding of ~1e-7 relative; over 50
// steps of AdamW the loss curves stay within 1e-5 relative (measured ~1e-9).
// Runs at one topology are deterministic and compared for equality.
#include <signal.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iterator>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "checkpoint/checkpoint.h"
#include "tests/trainer/run_process.h"

namespace sublet::trainer_testing {
namespace {

namespace fs = std::filesystem;

constexpr double kTopologyTolerance = 1e-5;

struct Topology {
  int dp;
  int tp;
  int np() const { return dp * tp; }
};

std::vector<std::string> Args(int64_t steps, int tp, const std::string& log,
                              std::vector<std::string> more = {}) {
  std::vector<std::string> a = {"--model", "tiny", "--steps", std::to_string(steps), "--seed", "5",
                                "--tp", std::to_string(tp), "--global-batch", "8", "--seq-len",
                                "16", "--log-json", log};
  a.insert(a.end(), more.begin(), more.end());
  return a;
}

// Runs at `t` and returns its log lines; expects `want_exit`.
std::vector<nlohmann::json> Train(Topology t, int64_t steps, const std::string& dir,
                                  std::vector<std::string> more = {}, int want_exit = 0) {
  const std::string log = dir + "/log-" + std::to_string(t.dp) + "x" + std::to_string(t.tp) +
                          "-" + std::to_string(std::rand()) + ".json";
  ProcessResult r = RunProcess(TrainCommand(t.np(), Args(steps, t.tp, log, std::move(more))));
  EXPECT_EQ(r.exit_code, want_exit) << r.err;
  return ReadJsonLines(log);
}

void ExpectCurvesClose(const std::map<int64_t, double>& want, const std::map<int64_t, double>& got,
                       const std::string& what) {
  ASSERT_FALSE(want.empty());
  for (const auto& [step, loss] : want) {
    ASSERT_TRUE(got.count(step)) << what << " has no step " << step;
    EXPECT_LE(std::abs(got.at(step) - loss), kTopologyTolerance * std::abs(loss))
        << what << " step " << step << ": " << got.at(step) << " vs " << loss;
  }
}

std::map<int64_t, double> After(const std::map<int64_t, double>& losses, int64_t step) {
  return {losses.upper_bound(step), losses.end()};
}

std::string FileBytes(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

TEST(SubletTrain, EveryDataTimesTensorTopologyFollowsTheSameLossCurve) {
  const std::string dir = FreshDir("runs");
  const auto reference = Losses(Train({1, 1}, 50, dir));
  ASSERT_EQ(reference.size(), 50u);
  EXPECT_LT(reference.rbegin()->second, reference.begin()->second);  // it learns
  for (Topology t : {Topology{2, 1}, Topology{1, 2}, Topology{2, 2}, Topology{4, 1}}) {
    ExpectCurvesClose(reference, Losses(Train(t, 50, dir)),
                      "DP" + std::to_string(t.dp) + "xTP" + std::to_string(t.tp));
  }
}

TEST(SubletTrain, OverlappedAndSerializedDataParallelGiveTheSameBits) {
  const std::string dir = FreshDir("runs");
  const auto overlapped = Losses(Train({2, 2}, 15, dir, {"--dp-schedule", "overlap"}));
  const auto serialized = Losses(Train({2, 2}, 15, dir, {"--dp-schedule", "serial"}));
  ASSERT_EQ(overlapped.size(), 15u);
  EXPECT_EQ(overlapped, serialized);
}

TEST(SubletTrain, LogPathWithRankLogsEveryRankToItsOwnFileWithIterationTimes) {
  const std::string dir = FreshDir("per-rank-logs");
  ProcessResult r = RunProcess(TrainCommand(2, Args(4, 1, dir + "/log-{rank}.json")));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  for (int rank : {0, 1}) {
    const auto lines = ReadJsonLines(dir + "/log-" + std::to_string(rank) + ".json");
    ASSERT_EQ(lines.size(), 4u) << "rank " << rank;
    double last = 0;
    for (const nlohmann::json& line : lines) {
      ASSERT_TRUE(line.contains("elapsed_s")) << line.dump();
      EXPECT_GT(line["elapsed_s"].get<double>(), last) << "rank " << rank << ": " << line.dump();
      last = line["elapsed_s"].get<double>();
    }
  }
  // Without {rank}, rank 0 alone logs (the file would hold 8 lines otherwise).
  EXPECT_EQ(Train({2, 1}, 4, dir).size(), 4u);
}

TEST(SubletTrain, RunPreemptedBySigusr1ResumesToTheSameBitsAsAnUninterruptedRun) {
  const std::string a = FreshDir("interrupted"), b = FreshDir("uninterrupted");
  const std::vector<std::string> ckpt_a = {"--checkpoint-dir", a + "/ckpt", "--checkpoint-every", "5"};
  const auto first = Train({2, 2}, 20, a, {ckpt_a[0], ckpt_a[1], ckpt_a[2], ckpt_a[3],
                                           "--test-signal-at-step", "7"}, 75);
  ASSERT_FALSE(Events(first, "checkpoint").empty());
  EXPECT_EQ(Events(first, "checkpoint").back()["step"], 7);
  EXPECT_EQ(Losses(first).rbegin()->first, 7);
  const auto resumed = Train({2, 2}, 20, a, ckpt_a);
  ASSERT_EQ(Events(resumed, "resume").size(), 1u);
  EXPECT_EQ(Events(resumed, "resume")[0]["step"], 7);

  const auto whole = Train({2, 2}, 20, b, {"--checkpoint-dir", b + "/ckpt", "--checkpoint-every", "5"});
  EXPECT_EQ(Losses(resumed), After(Losses(whole), 7));
  const fs::path end_a = a + "/ckpt/step-00000020", end_b = b + "/ckpt/step-00000020";
  for (int r = 0; r < 4; ++r) {
    const std::string shard = checkpoint::ShardFileName(r);
    ASSERT_TRUE(fs::exists(end_a / shard)) << shard;
    EXPECT_TRUE(FileBytes(end_a / shard) == FileBytes(end_b / shard)) << shard << " differs";
  }
}

// Async saves lend the live state to the writer and the next update writes
// into a second set of buffers (double buffering). Against synchronous saves
// (which write from the live buffers and update in place): the same losses
// and the same checkpoint bytes at every saved step. A save after every step
// is the hardest case (each update writes the set the save before lent);
// every checkpoint file waits 40 ms before it is written, so the writer is
// always still reading when the next steps run.
TEST(SubletTrain, AsyncDoubleBufferedSavesEqualSynchronousOnes) {
  const std::string a = FreshDir("async"), b = FreshDir("sync");
  const auto async_run = Train({2, 2}, 12, a,
                               {"--checkpoint-dir", a + "/ckpt", "--checkpoint-every", "1",
                                "--keep", "0", "--test-checkpoint-write-delay-ms", "40"});
  const auto sync_run = Train({2, 2}, 12, b, {"--checkpoint-dir", b + "/ckpt",
                                              "--checkpoint-every", "1", "--keep", "0",
                                              "--sync-checkpoint"});
  EXPECT_EQ(Losses(async_run), Losses(sync_run));
  int compared = 0;
  for (const auto& entry : fs::directory_iterator(a + "/ckpt")) {
    const std::string name = entry.path().filename();
    if (name.rfind("step-", 0) != 0) continue;
    for (int r = 0; r < 4; ++r) {
      const std::string shard = checkpoint::ShardFileName(r);
      ASSERT_TRUE(fs::exists(fs::path(b) / "ckpt" / name / shard)) << name;
      EXPECT_TRUE(FileBytes(entry.path() / shard) == FileBytes(fs::path(b) / "ckpt" / name / shard))
          << name << "/" << shard << " differs";
      ++compared;
    }
  }
  EXPECT_EQ(compared, 12 * 4);  // 11 async saves and the final one, 4 ranks each
}

TEST(SubletTrain, CheckpointSavedAtDp2Tp2ResumesAtOtherTopologies) {
  const std::string dir = FreshDir("runs");
  const auto reference = Losses(Train({2, 2}, 20, dir));
  const std::string saved = dir + "/saved";
  // Step 10 of the same 20-step run (the schedule depends on --steps).
  Train({2, 2}, 20, dir, {"--checkpoint-dir", saved, "--test-signal-at-step", "10"}, 75);
  ASSERT_TRUE(fs::exists(saved + "/step-00000010"));
  for (Topology t : {Topology{1, 2}, Topology{4, 1}, Topology{1, 1}}) {
    const std::string name = "DP" + std::to_string(t.dp) + "xTP" + std::to_string(t.tp);
    const std::string copy = dir + "/" + name;
    fs::copy(saved, copy, fs::copy_options::recursive);
    const auto lines = Train(t, 20, dir, {"--checkpoint-dir", copy});
    const auto resume = Events(lines, "resume");
    ASSERT_EQ(resume.size(), 1u) << name;
    EXPECT_EQ(resume[0]["step"], 10);
    EXPECT_EQ(resume[0]["from_dp"], 2);
    EXPECT_EQ(resume[0]["from_tp"], 2);
    const auto losses = Losses(lines);
    EXPECT_EQ(losses.begin()->first, 11) << name;
    ExpectCurvesClose(After(reference, 10), losses, name);
  }
}

// A notice from outside, twice (SIGUSR1, then SIGTERM while the first is
// being handled): the run checkpoints, exits 75, and the checkpoint resumes.
TEST(SubletTrain, SignalFromOutsideCheckpointsExits75AndResumes) {
  const std::string dir = FreshDir("ckpt");
  Child child(TrainCommand(0, Args(1'000'000, 1, "-", {"--checkpoint-dir", dir})));
  std::string line;
  int64_t seen = 0;
  while (seen < 3 && child.ReadLine(&line)) {
    auto j = nlohmann::json::parse(line);
    if (j.contains("loss")) seen = j["step"].get<int64_t>();
  }
  ASSERT_EQ(seen, 3);
  child.Signal(SIGUSR1);
  child.Signal(SIGTERM);
  int64_t saved = -1;
  while (child.ReadLine(&line)) {
    auto j = nlohmann::json::parse(line);
    if (j.contains("event") && j["event"] == "checkpoint") saved = j["step"].get<int64_t>();
  }
  EXPECT_EQ(child.Wait(), 75);
  ASSERT_GE(saved, 3);
  checkpoint::PosixFileSystem pfs;
  EXPECT_TRUE(checkpoint::VerifyCheckpoint(pfs, dir + "/" + checkpoint::StepDirName(saved)).ok());
  // Two more steps than saved, not the million asked first: a changed run.
  const auto lines = Train({1, 1}, saved + 2, FreshDir("logs"),
                           {"--checkpoint-dir", dir, "--allow-run-change"});
  ASSERT_EQ(Events(lines, "resume").size(), 1u);
  EXPECT_EQ(Events(lines, "resume")[0]["step"], saved);
  EXPECT_EQ(Losses(lines).size(), 2u);
}

TEST(SubletTrain, CheckpointDirDefaultsToTheServiceEnvironment) {
  const std::string dir = FreshDir("ckpt");
  ProcessResult r = RunProcess(TrainCommand(0, Args(3, 1, "")),
                               {{"SUBLET_CHECKPOINT_DIR", dir}, {"SUBLET_CHECKPOINT_EVERY", "2"}});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(fs::exists(dir + "/step-00000002"));
  EXPECT_TRUE(fs::exists(dir + "/step-00000003"));
}

TEST(SubletTrain, TrainsOnTheShippedTextCorpus) {
  const std::string dir = FreshDir("logs");
  const auto lines = Train({1, 1}, 3, dir, {"--data", SUBLET_SOURCE_DIR "/examples/data/corpus.txt"});
  EXPECT_EQ(Losses(lines).size(), 3u);
}

struct BadFlag {
  std::vector<std::string> args;
  std::map<std::string, std::string> env;
  std::string flag;
};

TEST(SubletTrain, BadFlagsExit2NamingTheFlag) {
  const std::vector<BadFlag> cases = {
      {{"--steps", "many"}, {}, "--steps"},
      {{"--steps", "1", "--model", "huge"}, {}, "--model"},
      {{"--steps", "1", "--tp", "3"}, {}, "--tp"},
      {{"--steps", "1", "--seq-len", "1000"}, {}, "--seq-len"},
      {{"--steps", "1", "--global-batch", "6", "--micro-batch", "4"}, {}, "--micro-batch"},
      {{"--steps", "1", "--backend", "carrier-pigeon"}, {}, "--backend"},
      {{"--steps", "1", "--data", "/nonexistent/corpus.txt"}, {}, "--data"},
      {{"--steps", "1"}, {{"SUBLET_CHECKPOINT_EVERY", "often"}}, "--checkpoint-every"},
      {{"--steps", "1", "--log-json", "/nonexistent/dir/log.json"}, {}, "--log-json"},
      {{"--steps", "99999999999999"}, {}, "--steps"},
      {{"--steps", "1", "--global-batch", "99999999999"}, {}, "--global-batch"},
  };
  for (const BadFlag& c : cases) {
    ProcessResult r = RunProcess(TrainCommand(0, c.args), c.env);
    EXPECT_EQ(r.exit_code, 2) << c.flag << ": " << r.err;
    EXPECT_NE(r.err.find(c.flag), std::string::npos) << r.err;
  }
}

std::vector<std::string> StepDirs(const std::string& dir) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(dir)) {
    const std::string name = e.path().filename().string();
    if (name.starts_with("step-")) out.push_back(name);
  }
  std::sort(out.begin(), out.end());
  return out;
}

// Another model's checkpoints in the directory: the run refuses to start
// (exit 2, naming the directory and why) instead of training from scratch,
// and its retention never gets to delete them.
TEST(SubletTrain, ARunThatCannotLoadTheCommittedCheckpointsThereRefusesAndDeletesNothing) {
  const std::string dir = FreshDir("foreign");
  const std::string ckpt = dir + "/ckpt";
  Train({1, 1}, 4, dir, {"--checkpoint-dir", ckpt, "--checkpoint-every", "2", "--keep", "0"});
  const std::vector<std::string> before = StepDirs(ckpt);
  ASSERT_EQ(before.size(), 2u);
  std::vector<std::string> args = Args(8, 1, dir + "/small.json",
                                       {"--checkpoint-dir", ckpt, "--keep", "1"});
  args[1] = "small";  // --model small: other tensor shapes
  ProcessResult r = RunProcess(TrainCommand(1, args));
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_THAT(r.err, ::testing::HasSubstr("--checkpoint-dir " + ckpt));
  EXPECT_THAT(r.err, ::testing::HasSubstr("cannot load"));
  EXPECT_EQ(StepDirs(ckpt), before);
}

// Resuming with other --steps would silently train another run: refused,
// unless the user says so.
TEST(SubletTrain, ChangingStepsOnResumeIsRefusedUnlessAllowed) {
  const std::string dir = FreshDir("change");
  const std::string ckpt = dir + "/ckpt";
  Train({1, 1}, 20, dir, {"--checkpoint-dir", ckpt, "--test-signal-at-step", "10"}, 75);
  ProcessResult refused = RunProcess(TrainCommand(1, Args(30, 1, dir + "/x.json",
                                                          {"--checkpoint-dir", ckpt})));
  EXPECT_EQ(refused.exit_code, 2) << refused.err;
  EXPECT_THAT(refused.err, ::testing::HasSubstr("--allow-run-change"));
  EXPECT_THAT(refused.err, ::testing::HasSubstr("--steps 20"));
  const auto lines = Train({1, 1}, 30, dir, {"--checkpoint-dir", ckpt, "--allow-run-change"});
  const auto resume = Events(lines, "resume");
  ASSERT_EQ(resume.size(), 1u);
  EXPECT_EQ(resume[0]["step"], 10);
  EXPECT_EQ(Losses(lines).rbegin()->first, 30);
}

// The lineage goes on across resumes: the resumed run's retention deletes
// the steps it continues from (keep 1 leaves only the newest).
TEST(SubletTrain, AResumedRunKeepsOneLineageForRetention) {
  const std::string dir = FreshDir("lineage");
  const std::string ckpt = dir + "/ckpt";
  Train({1, 1}, 12, dir, {"--checkpoint-dir", ckpt, "--checkpoint-every", "2", "--keep", "0",
                          "--test-signal-at-step", "6"}, 75);
  ASSERT_EQ(StepDirs(ckpt).size(), 3u);  // 2, 4, 6
  Train({1, 1}, 12, dir, {"--checkpoint-dir", ckpt, "--checkpoint-every", "2", "--keep", "1"});
  EXPECT_THAT(StepDirs(ckpt), ::testing::ElementsAre("step-00000006", "step-00000012"))
      << "the resume step is protected, the rest of the lineage goes";
}

// A notice with nowhere to checkpoint is not "checkpointed for preemption".
TEST(SubletTrain, ANoticeWithoutACheckpointDirDoesNotExit75) {
  const std::string dir = FreshDir("nockpt");
  ProcessResult r = RunProcess(TrainCommand(1, Args(20, 1, dir + "/log.json",
                                                    {"--test-signal-at-step", "3"})));
  EXPECT_EQ(r.exit_code, 128 + SIGTERM) << r.err;
  EXPECT_THAT(r.err, ::testing::HasSubstr("nothing was saved"));
}

}  // namespace
}  // namespace sublet::trainer_testing

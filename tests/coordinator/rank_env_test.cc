// The rank environment is a user-visible contract (DESIGN.md "Rank
// environment"): these tests pin it as a pure function of job and config.
#include "coordinator/rank_env.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <map>

namespace sublet::coordinator {
namespace {

using ::testing::Contains;
using ::testing::Key;
using ::testing::Not;

// Two nodes x two ranks, as the scheduler would place them.
Job TwoByTwo() {
  Job job;
  job.id = 42;
  job.tenant = "acme";
  job.attempt = 3;
  job.spec.nodes = 2;
  job.spec.gpus_per_node = 2;
  job.spec.tensor_parallel = 2;
  job.spec.checkpoint_every_steps = 50;
  job.spec.checkpoint_keep = 3;
  job.master_addr = "10.0.0.1";
  job.master_port = 41001;
  job.rendezvous_port = 41000;
  for (uint32_t r = 0; r < 4; ++r) {
    RankRecord rank;
    rank.rank = r;
    rank.node = r < 2 ? "node-b" : "node-a";
    rank.local_rank = r % 2;
    rank.gpus = {r % 2};
    job.ranks.push_back(rank);
  }
  return job;
}

std::map<std::string, std::string> EnvMap(const std::vector<protocols::KeyValue>& env) {
  std::map<std::string, std::string> out;
  for (const auto& kv : env) out[kv.key] = kv.value;  // later entries win, as in the worker
  return out;
}

Config Storage() {
  Config config;
  config.storage_root = "/srv/sublet";
  return config;
}

TEST(RankEnvTest, CheckpointDirIsUnderTheTenantsStorage) {
  EXPECT_EQ(CheckpointDir(Storage(), "acme", 42), "/srv/sublet/acme/42/checkpoints");
}

TEST(RankEnvTest, TheNoticeSignalIsTheSpecsForTheSdk) {
  Job job = TwoByTwo();
  job.spec.preemption_signal = "SIGTERM";
  EXPECT_EQ(EnvMap(RankEnv(job, job.ranks[0], Storage()))["SUBLET_PREEMPTION_SIGNAL"], "SIGTERM");
}

TEST(RankEnvTest, TorchrunStartsOnePerNodeWithAStaticRendezvousAtTheMaster) {
  Job job = TwoByTwo();
  job.spec.launcher = "torchrun";
  job.spec.command = {"/venv/bin/python", "train.py", "--steps", "9"};
  job.ranks = {{.rank = 0, .node = "node-b", .gpus = {0, 1}},
               {.rank = 1, .node = "node-a", .gpus = {0, 1}}};
  EXPECT_EQ(RankCommand(job, job.ranks[1]),
            (std::vector<std::string>{"/venv/bin/python", "-m", "sublet.torchrun", "--nnodes=2",
                                      "--node-rank=1", "--nproc-per-node=2",
                                      "--rdzv-backend=static", "--master-addr=10.0.0.1",
                                      "--master-port=41001", "--max-restarts=0",
                                      "--rdzv-id=sublet-42-3", "train.py", "--steps", "9"}));
  EXPECT_EQ(EnvMap(RankEnv(job, job.ranks[0], Storage()))["SUBLET_LAUNCHER"], "torchrun");
  EXPECT_EQ(job.Gpus(), 4u);
  job.spec.launcher.clear();
  EXPECT_EQ(RankCommand(job, job.ranks[0]), job.spec.command);
  EXPECT_EQ(EnvMap(RankEnv(job, job.ranks[0], Storage())).count("SUBLET_LAUNCHER"), 0u);
}

TEST(RankEnvTest, GivesEveryVariableDesignNames) {
  const Job job = TwoByTwo();
  auto env = EnvMap(RankEnv(job, job.ranks[3], Storage()));
  EXPECT_EQ(env["SUBLET_JOB_ID"], "42");
  EXPECT_EQ(env["SUBLET_ATTEMPT"], "3");
  EXPECT_EQ(env["SUBLET_RANK"], "3");
  EXPECT_EQ(env["SUBLET_WORLD_SIZE"], "4");
  EXPECT_EQ(env["SUBLET_LOCAL_RANK"], "1");
  EXPECT_EQ(env["SUBLET_LOCAL_WORLD_SIZE"], "2");
  EXPECT_EQ(env["SUBLET_NODE_NAME"], "node-a");
  EXPECT_EQ(env["SUBLET_NNODES"], "2");
  EXPECT_EQ(env["SUBLET_TENSOR_PARALLEL"], "2");
  EXPECT_EQ(env["SUBLET_RENDEZVOUS"], "10.0.0.1:41000");
  EXPECT_EQ(env["SUBLET_CHECKPOINT_DIR"], "/srv/sublet/acme/42/checkpoints");
  EXPECT_EQ(env["SUBLET_CHECKPOINT_EVERY"], "50");
  EXPECT_EQ(env["SUBLET_CHECKPOINT_KEEP"], "3");
  EXPECT_EQ(env["SUBLET_PREEMPTION_SIGNAL"], "SIGUSR1");
  EXPECT_EQ(env["RANK"], "3");
  EXPECT_EQ(env["WORLD_SIZE"], "4");
  EXPECT_EQ(env["LOCAL_RANK"], "1");
  EXPECT_EQ(env["LOCAL_WORLD_SIZE"], "2");
  EXPECT_EQ(env["MASTER_ADDR"], "10.0.0.1");
  EXPECT_EQ(env["MASTER_PORT"], "41001");
}

TEST(RankEnvTest, NodeRankFollowsTheOrderOfThePlacementNotNodeNames) {
  const Job job = TwoByTwo();
  EXPECT_EQ(EnvMap(RankEnv(job, job.ranks[0], Storage()))["SUBLET_NODE_RANK"], "0");
  EXPECT_EQ(EnvMap(RankEnv(job, job.ranks[2], Storage()))["NODE_RANK"], "1");
}

TEST(RankEnvTest, TheServicesVariablesComeAfterTheSpecsAndWin) {
  Job job = TwoByTwo();
  job.spec.env["SUBLET_LOG_LEVEL"] = "debug";
  job.spec.env["RANK"] = "0";  // refused at submit; even if it got through, ours wins
  const auto env = RankEnv(job, job.ranks[3], Storage());
  EXPECT_EQ(env.front().key, "RANK");
  auto merged = EnvMap(env);
  EXPECT_EQ(merged["RANK"], "3");
  EXPECT_EQ(merged["SUBLET_LOG_LEVEL"], "debug");
}

TEST(RankEnvTest, CarriesNoServiceCredentialOrWorkerSetting) {
  const Job job = TwoByTwo();
  auto env = EnvMap(RankEnv(job, job.ranks[0], Storage()));
  EXPECT_THAT(env, Not(Contains(Key("SUBLET_TOKEN"))));
  EXPECT_THAT(env, Not(Contains(Key("SUBLET_COORDINATOR"))));
  EXPECT_THAT(env, Not(Contains(Key("CUDA_VISIBLE_DEVICES")))) << "the worker sets it";
}

TEST(RankEnvTest, EachAttemptHasItsOwnSecretThatASpecCannotSet) {
  Config config = Storage();
  config.rank_secret_key = std::string(32, 'k');
  Job job = TwoByTwo();
  job.spec.env = {{"SUBLET_JOB_SECRET", "chosen-by-the-tenant"}};
  auto first = EnvMap(RankEnv(job, job.ranks[0], config));
  auto other_rank = EnvMap(RankEnv(job, job.ranks[3], config));
  EXPECT_THAT(first["SUBLET_JOB_SECRET"], ::testing::MatchesRegex("[0-9a-f]{64}"));
  EXPECT_EQ(first["SUBLET_JOB_SECRET"], other_rank["SUBLET_JOB_SECRET"]) << "one per attempt";
  EXPECT_EQ(first["SUBLET_JOB_SECRET"], RankSecret(config, job.id, job.attempt)) << "stable";
  job.attempt += 1;
  EXPECT_NE(EnvMap(RankEnv(job, job.ranks[0], config))["SUBLET_JOB_SECRET"],
            first["SUBLET_JOB_SECRET"]);
  EXPECT_NE(RankSecret(config, job.id + 1, job.attempt - 1), first["SUBLET_JOB_SECRET"]);
  config.rank_secret_key = std::string(32, 'j');
  EXPECT_NE(RankSecret(config, job.id, job.attempt - 1), first["SUBLET_JOB_SECRET"]);
  const Job plain = TwoByTwo();
  EXPECT_THAT(EnvMap(RankEnv(plain, plain.ranks[0], Storage())),
              Not(Contains(Key("SUBLET_JOB_SECRET"))))
      << "no key, no secret";
}

}  // namespace
}  // namespace sublet::coordinator

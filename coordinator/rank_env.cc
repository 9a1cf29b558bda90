#include "coordinator/rank_env.h"

#include <sodium.h>

#include "fmt/format.h"

namespace sublet::coordinator {

std::string RankSecret(const Config& config, uint64_t job_id, uint32_t attempt) {
  if (config.rank_secret_key.size() != crypto_auth_hmacsha256_KEYBYTES) return "";
  const std::string message = fmt::format("sublet/rank-secret/v1/job/{}/attempt/{}", job_id, attempt);
  unsigned char mac[crypto_auth_hmacsha256_BYTES];
  crypto_auth_hmacsha256(mac, reinterpret_cast<const unsigned char*>(message.data()),
                         message.size(),
                         reinterpret_cast<const unsigned char*>(config.rank_secret_key.data()));
  char hex[2 * sizeof(mac) + 1];
  sodium_bin2hex(hex, sizeof(hex), mac, sizeof(mac));
  sodium_memzero(mac, sizeof(mac));
  return hex;
}

std::string CheckpointDir(const Config& config, const std::string& tenant, uint64_t job_id) {
  return fmt::format("{}/{}/{}/checkpoints", config.storage_root, tenant, job_id);
}

namespace {

// Node ranks follow the order in which the attempt's ranks name nodes.
std::vector<std::string> NodeOrder(const Job& job) {
  std::vector<std::string> node_order;
  for (const RankRecord& r : job.ranks) {
    if (node_order.empty() || node_order.back() != r.node) node_order.push_back(r.node);
  }
  return node_order;
}

uint32_t NodeRank(const std::vector<std::string>& node_order, const std::string& node) {
  uint32_t node_rank = 0;
  while (node_rank < node_order.size() && node_order[node_rank] != node) ++node_rank;
  return node_rank;
}

}  // namespace

std::vector<std::string> RankCommand(const Job& job, const RankRecord& rank) {
  if (!job.spec.Torchrun() || job.spec.command.empty()) return job.spec.command;
  const std::vector<std::string> node_order = NodeOrder(job);
  std::vector<std::string> argv = {
      job.spec.command[0],
      "-m",
      "sublet.torchrun",
      fmt::format("--nnodes={}", node_order.size()),
      fmt::format("--node-rank={}", NodeRank(node_order, rank.node)),
      fmt::format("--nproc-per-node={}", rank.gpus.size()),
      "--rdzv-backend=static",
      fmt::format("--master-addr={}", job.master_addr),
      fmt::format("--master-port={}", job.master_port),
      "--max-restarts=0",
      fmt::format("--rdzv-id=sublet-{}-{}", job.id, job.attempt),
  };
  argv.insert(argv.end(), job.spec.command.begin() + 1, job.spec.command.end());
  return argv;
}

std::vector<protocols::KeyValue> RankEnv(const Job& job, const RankRecord& rank,
                                         const Config& config) {
  const std::vector<std::string> node_order = NodeOrder(job);
  const uint32_t node_rank = NodeRank(node_order, rank.node);
  const std::string world = std::to_string(job.ranks.size());
  const std::string local_world = std::to_string(job.spec.gpus_per_node);
  std::vector<protocols::KeyValue> env;
  for (const auto& [k, v] : job.spec.env) env.push_back({k, v});
  std::vector<protocols::KeyValue> ours = {
      {"SUBLET_JOB_ID", std::to_string(job.id)},
      {"SUBLET_ATTEMPT", std::to_string(job.attempt)},
      {"SUBLET_RANK", std::to_string(rank.rank)},
      {"SUBLET_WORLD_SIZE", world},
      {"SUBLET_LOCAL_RANK", std::to_string(rank.local_rank)},
      {"SUBLET_LOCAL_WORLD_SIZE", local_world},
      {"SUBLET_NODE_RANK", std::to_string(node_rank)},
      {"SUBLET_NODE_NAME", rank.node},
      {"SUBLET_NNODES", std::to_string(node_order.size())},
      {"SUBLET_TENSOR_PARALLEL", std::to_string(job.spec.tensor_parallel)},
      {"SUBLET_RENDEZVOUS", fmt::format("{}:{}", job.master_addr, job.rendezvous_port)},
      {"SUBLET_CHECKPOINT_DIR", CheckpointDir(config, job.tenant, job.id)},
      {"SUBLET_CHECKPOINT_EVERY", std::to_string(job.spec.checkpoint_every_steps)},
      {"SUBLET_CHECKPOINT_KEEP", std::to_string(job.spec.checkpoint_keep)},
      // The notice signal (the SDK handles it; SIGTERM means the same).
      {"SUBLET_PREEMPTION_SIGNAL",
       job.spec.preemption_signal.empty() ? std::string("SIGUSR1") : job.spec.preemption_signal},
      {"RANK", std::to_string(rank.rank)},
      {"WORLD_SIZE", world},
      {"LOCAL_RANK", std::to_string(rank.local_rank)},
      {"LOCAL_WORLD_SIZE", local_world},
      {"NODE_RANK", std::to_string(node_rank)},
      {"MASTER_ADDR", job.master_addr},
      {"MASTER_PORT", std::to_string(job.master_port)},
  };
  env.insert(env.end(), ours.begin(), ours.end());
  // Proves a connection to the job's rendezvous store and rank mesh comes
  // from a rank of this attempt (collectives/internal/peer_auth.h). It
  // travels only inside CURVE to the workers and is visible only inside the
  // attempt's PID namespace.
  if (std::string secret = RankSecret(config, job.id, job.attempt); !secret.empty()) {
    env.push_back({"SUBLET_JOB_SECRET", std::move(secret)});
  }
  if (job.spec.Torchrun()) env.push_back({"SUBLET_LAUNCHER", "torchrun"});
  if (job.array_id != 0) {
    // Slurm's SLURM_ARRAY_JOB_ID, SLURM_ARRAY_TASK_ID, SLURM_ARRAY_TASK_COUNT.
    env.push_back({"SUBLET_ARRAY_JOB_ID", std::to_string(job.array_id)});
    env.push_back({"SUBLET_ARRAY_INDEX", std::to_string(job.array_index)});
    env.push_back({"SUBLET_ARRAY_TASK_COUNT", std::to_string(job.array_size)});
  }
  return env;
}

}  // namespace sublet::coordinator

// The environment a rank starts with: DESIGN.md's "Rank environment", a
// contract users' scripts read (SUBLET_*, and the names torchrun sets), and
// where a job's checkpoints live.
//
// Pure functions of the job and the coordinator's configuration.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "coordinator/config.h"
#include "coordinator/model.h"
#include "protocols/messages.h"

namespace sublet::coordinator {

// <storage_root>/<tenant>/<job id>/checkpoints: the one spelling of a job's
// checkpoint directory (DESIGN.md "Daemons and configuration").
std::string CheckpointDir(const Config& config, const std::string& tenant, uint64_t job_id);

// The secret of one job attempt's ranks, 64 hex digits: HMAC-SHA256 of the
// job and attempt under config.rank_secret_key, so it survives coordinator
// restarts without being stored. Empty when the config has no key.
std::string RankSecret(const Config& config, uint64_t job_id, uint32_t attempt);

// The variables `rank` of `job`'s current attempt starts with: the spec's
// `env` first, then Sublet's own, so a spec cannot override SUBLET_RANK,
// MASTER_ADDR and the rest (later entries win when the worker overlays them).
std::vector<protocols::KeyValue> RankEnv(const Job& job, const RankRecord& rank,
                                         const Config& config);

// The command `rank` starts with: the spec's, or under `launcher: torchrun`
// [PYTHON, -m, sublet.torchrun, --nnodes=N, --node-rank=I,
// --nproc-per-node=G, --rdzv-backend=static, --master-addr=A,
// --master-port=P, --max-restarts=0, --rdzv-id=sublet-JOB-ATTEMPT, ARGS...]
// where the spec's command is [PYTHON, ARGS...]: one torchrun per node
// (sublet.torchrun wraps torch.distributed.run: the notice reaches the
// workers and their exit 75 becomes the node's); Sublet, not torchrun,
// restarts the gang.
std::vector<std::string> RankCommand(const Job& job, const RankRecord& rank);

}  // namespace sublet::coordinator

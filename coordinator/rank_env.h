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

}  // namespace sublet::coordinator

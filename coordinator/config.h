// The coordinator's configuration file (YAML, written by the operator):
//
//   storage_root: /srv/sublet        # shared by all nodes
//   heartbeat_timeout: 10s
//   stop_grace: 10s                  # SIGTERM -> SIGKILL grace when stopping ranks
//   max_jobs_per_tenant: 10000       # jobs one tenant may have not yet ended
//   tenants:
//     - {name: acme, token: "acme-token"}
//   admins:
//     - {name: infra, token: "admin-token"}
//   workers: {token: "node-token"}
//
// A token identifies exactly one tenant, one admin or the worker pool.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include "absl/time/time.h"
#include "common/status.h"

namespace sublet::coordinator {

enum class Role { kTenant, kAdmin, kWorker };

struct Principal {
  Role role = Role::kTenant;
  std::string name;  // tenant or admin name; "workers" for the pool
};

struct Config {
  std::string storage_root;
  absl::Duration heartbeat_timeout = absl::Seconds(10);
  absl::Duration stop_grace = absl::Seconds(10);
  // Jobs one tenant may have pending, running or preempting at once (Slurm's
  // MaxSubmitJobs): beyond it a submission is refused with ResourceExhausted,
  // so no tenant can flood the queue and the store. 0: no limit.
  uint32_t max_jobs_per_tenant = 10'000;
  // Between failure restarts a job waits base * 2^(restart-1), at most max
  // (Kueue's backoffBaseSeconds/backoffMaxSeconds); shown as its pending
  // reason. A zero base: restart at once.
  absl::Duration restart_backoff_base = absl::Seconds(10);
  absl::Duration restart_backoff_max = absl::Minutes(10);
  std::unordered_map<std::string, Principal> tokens;

  // The principal a token stands for, or nullopt for an unknown token.
  std::optional<Principal> Authenticate(std::string_view token) const;
};

// Parses config text; errors name the field ("tenants[1].token: duplicate token").
absl::StatusOr<Config> ParseConfig(std::string_view yaml);
absl::StatusOr<Config> LoadConfig(const std::string& path);

}  // namespace sublet::coordinator

// The coordinator's configuration file (YAML, written by the operator):
//
//   storage_root: /srv/sublet        # shared by all nodes
//   heartbeat_timeout: 10s
//   stop_grace: 10s                  # SIGTERM -> SIGKILL grace when stopping ranks
//   max_jobs_per_tenant: 10000       # jobs one tenant may have not yet ended
//   tenants:
//     - {name: acme, token: "acme-token", quota: {gpus: 8}, borrow_limit: {gpus: 4},
//        weight: 2, max_priority: high}              # all four optional: fair_share.h
//     - {name: globex, token_sha256: "<64 hex digits>"}   # the file holds no credential
//   admins:
//     - {name: infra, token: "admin-token"}
//   workers:
//     keys: ["<node CURVE public key>", ...]   # only these nodes may register
//     token: "node-token"                      # optional: then nodes must also send it
//   fair_share: {half_life: 7d}                # usage decay for borrowers' order
//   fairness_preemption: {grace: 2m, min_runtime: 10m}   # fairness.h; enabled: false turns it off
//
// A token identifies exactly one tenant, one admin or the worker pool. Only
// tokens' SHA-256 digests are kept in memory, whichever form the file used.
#pragma once

#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "absl/time/time.h"
#include "common/status.h"
#include "coordinator/fair_share.h"

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
  // SHA-256 of each token (32 raw bytes) -> who it stands for.
  std::unordered_map<std::string, Principal> token_digests;
  // CURVE public keys (Z85) of the nodes that may register.
  std::set<std::string> worker_keys;
  // Whether `workers.token` is set: nodes must then present it too.
  bool worker_token = false;
  // Per tenant (by name): quota, borrow limit, weight, max priority. A
  // tenant without an entry has the defaults.
  std::unordered_map<std::string, TenantPolicy> tenant_policies;
  absl::Duration fair_share_half_life = absl::Hours(24 * 7);
  // Getting a guarantee back (fairness.h), with quotas only: borrowers'
  // jobs are preempted for a tenant below its quota, with `fairness_grace`
  // to checkpoint, never before they have run `fairness_min_runtime`.
  bool fairness_preemption = true;
  absl::Duration fairness_grace = absl::Minutes(2);
  absl::Duration fairness_min_runtime = absl::Minutes(10);
  // Whether any tenant policy field or fair_share was written: quotas and
  // fair share apply, and max_priority defaults to normal.
  bool policies_configured = false;
  // Not from the file: set by the coordinator at start from its state dir.
  // The key every job attempt's rank secret is derived from (32 raw bytes;
  // empty: ranks get no secret).
  std::string rank_secret_key;

  // The principal a token stands for, or nullopt for an unknown token.
  std::optional<Principal> Authenticate(std::string_view token) const;
  // Adds a token; false when it (or its digest) is already taken.
  bool AddToken(std::string_view token, Principal principal);
  // The tenant's policy (the defaults when it has none).
  TenantPolicy PolicyOf(const std::string& tenant) const;
  // The names of all tenants, sorted, each once.
  std::vector<std::string> TenantNames() const;
};

// SHA-256 of `text` as 32 raw bytes, and as 64 lowercase hex digits.
std::string Sha256(std::string_view text);
std::string Sha256Hex(std::string_view text);

// Parses config text; errors name the field ("tenants[1].token: duplicate token").
absl::StatusOr<Config> ParseConfig(std::string_view yaml);
absl::StatusOr<Config> LoadConfig(const std::string& path);

}  // namespace sublet::coordinator

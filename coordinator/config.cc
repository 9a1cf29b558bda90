#include "coordinator/config.h"

#include <fstream>
#include <set>
#include <sstream>

#include <sodium.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cmath>

#include "common/duration.h"
#include "protocols/curve.h"
#include "fmt/format.h"

namespace sublet::coordinator {
namespace {

absl::Status FieldError(const std::string& field, const std::string& message) {
  return absl::InvalidArgumentError(fmt::format("{}: {}", field, message));
}

absl::StatusOr<std::string> RequiredString(const YAML::Node& node, const std::string& field) {
  if (!node || !node.IsScalar() || node.Scalar().empty()) {
    return FieldError(field, "required, must be a non-empty string");
  }
  return node.Scalar();
}

absl::Status CheckKeys(const YAML::Node& map, const std::set<std::string>& allowed,
                       const std::string& where) {
  if (!map.IsMap()) return FieldError(where, "must be a mapping");
  for (const auto& kv : map) {
    std::string key = kv.first.as<std::string>();
    if (!allowed.count(key)) {
      return FieldError(where.empty() ? key : where + "." + key, "unknown field");
    }
  }
  return absl::OkStatus();
}

// `token: T` or `token_sha256: <hex>` of the map `node` (at `where`) for
// `principal`: exactly one of them.
absl::Status AddCredential(const YAML::Node& node, const std::string& where, Principal principal,
                           Config& config) {
  const bool plain = static_cast<bool>(node["token"]);
  const bool hashed = static_cast<bool>(node["token_sha256"]);
  if (plain == hashed) {
    return FieldError(where, plain ? "give token or token_sha256, not both"
                                   : "token or token_sha256 is required");
  }
  std::string digest;
  std::string field = where + (plain ? ".token" : ".token_sha256");
  if (plain) {
    SUBLET_ASSIGN_OR_RETURN(std::string token, RequiredString(node["token"], field));
    digest = Sha256(token);
  } else {
    SUBLET_ASSIGN_OR_RETURN(std::string hex, RequiredString(node["token_sha256"], field));
    digest.resize(crypto_hash_sha256_BYTES);
    size_t length = 0;
    if (hex.size() != 2 * crypto_hash_sha256_BYTES ||
        sodium_hex2bin(reinterpret_cast<unsigned char*>(digest.data()), digest.size(), hex.data(),
                       hex.size(), nullptr, &length, nullptr) != 0 ||
        length != digest.size()) {
      return FieldError(field, "must be 64 hex digits, the SHA-256 of the token "
                               "(`printf %s TOKEN | sha256sum`)");
    }
  }
  if (!config.token_digests.emplace(digest, std::move(principal)).second) {
    return FieldError(field, "duplicate token: a token identifies exactly one caller");
  }
  return absl::OkStatus();
}

absl::StatusOr<uint32_t> WholeNumber(const YAML::Node& node, const std::string& field) {
  uint32_t n = 0;
  if (!node.IsScalar() || node.Scalar().empty() ||
      node.Scalar().find_first_not_of("0123456789") != std::string::npos ||
      !YAML::convert<uint32_t>::decode(node, n)) {
    return FieldError(field, "must be a whole number");
  }
  return n;
}

// `{gpus: N}` at `field`.
absl::StatusOr<uint32_t> GpuAmount(const YAML::Node& node, const std::string& field) {
  if (!node.IsMap()) return FieldError(field, "expected {gpus: N}");
  SUBLET_RETURN_IF_ERROR(CheckKeys(node, {"gpus"}, field));
  if (!node["gpus"]) return FieldError(field + ".gpus", "required");
  return WholeNumber(node["gpus"], field + ".gpus");
}

// A tenant's quota, borrow_limit, weight and max_priority (fair_share.h).
absl::Status AddTenantPolicy(const YAML::Node& entry, const std::string& where,
                             const std::string& name, Config& config) {
  const bool any = entry["quota"] || entry["borrow_limit"] || entry["weight"] ||
                   entry["max_priority"];
  if (!any) return absl::OkStatus();
  if (config.tenant_policies.count(name)) {
    return FieldError(where, fmt::format("tenant {} has a quota, borrow_limit, weight or "
                                         "max_priority in another entry already", name));
  }
  TenantPolicy policy;
  if (entry["quota"]) {
    SUBLET_ASSIGN_OR_RETURN(policy.quota_gpus, GpuAmount(entry["quota"], where + ".quota"));
  }
  if (entry["borrow_limit"]) {
    SUBLET_ASSIGN_OR_RETURN(policy.borrow_limit_gpus,
                            GpuAmount(entry["borrow_limit"], where + ".borrow_limit"));
  }
  if (const YAML::Node w = entry["weight"]) {
    double weight = 0;
    if (!w.IsScalar() || !YAML::convert<double>::decode(w, weight) || !(weight > 0) ||
        !std::isfinite(weight)) {
      return FieldError(where + ".weight", "must be a number above 0");
    }
    policy.weight = weight;
  }
  if (const YAML::Node p = entry["max_priority"]) {
    const std::string text = p.IsScalar() ? p.Scalar() : "";
    if (text == "low") {
      policy.max_priority = protocols::Priority::kLow;
    } else if (text == "normal") {
      policy.max_priority = protocols::Priority::kNormal;
    } else if (text == "high") {
      policy.max_priority = protocols::Priority::kHigh;
    } else {
      return FieldError(where + ".max_priority", "must be low, normal or high");
    }
  }
  config.tenant_policies[name] = policy;
  config.policies_configured = true;
  return absl::OkStatus();
}

absl::Status AddPrincipals(const YAML::Node& list, Role role, const std::string& field,
                           Config& config) {
  if (!list) return absl::OkStatus();
  if (!list.IsSequence()) return FieldError(field, "must be a list of {name, token}");
  std::set<std::string> allowed = {"name", "token", "token_sha256"};
  if (role == Role::kTenant) allowed.insert({"quota", "borrow_limit", "weight", "max_priority"});
  for (size_t i = 0; i < list.size(); ++i) {
    std::string where = fmt::format("{}[{}]", field, i);
    SUBLET_RETURN_IF_ERROR(CheckKeys(list[i], allowed, where));
    SUBLET_ASSIGN_OR_RETURN(std::string name, RequiredString(list[i]["name"], where + ".name"));
    SUBLET_RETURN_IF_ERROR(AddCredential(list[i], where, Principal{role, name}, config));
    if (role == Role::kTenant) SUBLET_RETURN_IF_ERROR(AddTenantPolicy(list[i], where, name, config));
  }
  return absl::OkStatus();
}

absl::Status AddWorkers(const YAML::Node& workers, Config& config) {
  SUBLET_RETURN_IF_ERROR(CheckKeys(workers, {"keys", "token", "token_sha256"}, "workers"));
  if (workers["token"] || workers["token_sha256"]) {
    SUBLET_RETURN_IF_ERROR(
        AddCredential(workers, "workers", Principal{Role::kWorker, "workers"}, config));
    config.worker_token = true;
  }
  const YAML::Node keys = workers["keys"];
  if (!keys || keys.IsNull()) return absl::OkStatus();
  if (!keys.IsSequence()) {
    return FieldError("workers.keys", "must be a list of node public keys (Z85, 40 characters)");
  }
  for (size_t i = 0; i < keys.size(); ++i) {
    const std::string where = fmt::format("workers.keys[{}]", i);
    if (!keys[i].IsScalar()) return FieldError(where, "must be a node public key");
    SUBLET_ASSIGN_OR_RETURN(std::string key, protocols::ParseCurveKey(keys[i].Scalar(), where));
    if (!config.worker_keys.insert(key).second) return FieldError(where, "listed twice");
  }
  return absl::OkStatus();
}

// fairness_preemption: {grace: D, min_runtime: D, enabled: B} (fairness.h).
absl::Status ParseFairnessPreemption(const YAML::Node& fp, Config& config) {
  if (!fp.IsMap()) {
    return FieldError("fairness_preemption", "expected {grace: D, min_runtime: D, enabled: B}");
  }
  SUBLET_RETURN_IF_ERROR(
      CheckKeys(fp, {"grace", "min_runtime", "enabled"}, "fairness_preemption"));
  if (const YAML::Node grace = fp["grace"]) {
    auto d = ParseDuration(grace.IsScalar() ? grace.Scalar() : "");
    if (!d.ok()) return FieldError("fairness_preemption.grace", std::string(d.status().message()));
    if (*d > absl::Hours(24)) return FieldError("fairness_preemption.grace", "must be at most 24h");
    config.fairness_grace = *d;
  }
  if (const YAML::Node min = fp["min_runtime"]) {
    const std::string text = min.IsScalar() ? min.Scalar() : "";
    auto d = text == "0" || text == "0s" ? absl::StatusOr<absl::Duration>(absl::ZeroDuration())
                                          : ParseDuration(text);
    if (!d.ok()) {
      return FieldError("fairness_preemption.min_runtime", std::string(d.status().message()));
    }
    config.fairness_min_runtime = *d;
  }
  if (const YAML::Node enabled = fp["enabled"]) {
    bool on = true;
    if (!enabled.IsScalar() || !YAML::convert<bool>::decode(enabled, on)) {
      return FieldError("fairness_preemption.enabled", "must be true or false");
    }
    config.fairness_preemption = on;
  }
  return absl::OkStatus();
}

absl::StatusOr<Config> ParseRoot(const YAML::Node& root) {
  SUBLET_RETURN_IF_ERROR(CheckKeys(
      root, {"storage_root", "heartbeat_timeout", "stop_grace", "max_jobs_per_tenant", "tenants",
             "admins", "workers", "restart_backoff", "fair_share", "fairness_preemption"},
      ""));
  Config config;
  SUBLET_ASSIGN_OR_RETURN(config.storage_root, RequiredString(root["storage_root"], "storage_root"));
  // Workers bind it into each job's sandbox, so it must mean the same
  // directory to every process on every node.
  if (!config.storage_root.starts_with("/")) {
    return absl::InvalidArgumentError(fmt::format(
        "storage_root: must be an absolute path, got '{}'", config.storage_root));
  }
  if (const YAML::Node backoff = root["restart_backoff"]) {
    if (!backoff.IsMap()) return FieldError("restart_backoff", "expected {base: D, max: D}");
    SUBLET_RETURN_IF_ERROR(CheckKeys(backoff, {"base", "max"}, "restart_backoff"));
    for (auto [key, target] : {std::pair{"base", &config.restart_backoff_base},
                               std::pair{"max", &config.restart_backoff_max}}) {
      if (!backoff[key]) continue;
      const std::string text = backoff[key].Scalar();
      // 0 turns the backoff off (ParseDuration wants a positive duration).
      auto d = text == "0" || text == "0s" ? absl::StatusOr<absl::Duration>(absl::ZeroDuration())
                                            : ParseDuration(text);
      if (!d.ok() || *d < absl::ZeroDuration()) {
        return FieldError(std::string("restart_backoff.") + key,
                          d.ok() ? "must not be negative" : std::string(d.status().message()));
      }
      *target = *d;
    }
    if (config.restart_backoff_max < config.restart_backoff_base) {
      return FieldError("restart_backoff.max", "must be at least restart_backoff.base");
    }
  }
  for (auto [key, target] : {std::pair{"heartbeat_timeout", &config.heartbeat_timeout},
                             std::pair{"stop_grace", &config.stop_grace}}) {
    if (!root[key]) continue;
    auto d = ParseDuration(root[key].Scalar());
    if (!d.ok()) return FieldError(key, std::string(d.status().message()));
    *target = *d;
  }
  if (const YAML::Node limit = root["max_jobs_per_tenant"]) {
    uint32_t n = 0;
    if (!limit.IsScalar() || !YAML::convert<uint32_t>::decode(limit, n) ||
        limit.Scalar().find_first_not_of("0123456789") != std::string::npos) {
      return FieldError("max_jobs_per_tenant", "must be a whole number (0: no limit)");
    }
    config.max_jobs_per_tenant = n;
  }
  if (const YAML::Node fair = root["fair_share"]) {
    if (!fair.IsMap()) return FieldError("fair_share", "expected {half_life: D}");
    SUBLET_RETURN_IF_ERROR(CheckKeys(fair, {"half_life"}, "fair_share"));
    if (fair["half_life"]) {
      auto d = ParseDuration(fair["half_life"].Scalar());
      if (!d.ok()) return FieldError("fair_share.half_life", std::string(d.status().message()));
      config.fair_share_half_life = *d;
    }
    config.policies_configured = true;
  }
  if (const YAML::Node fp = root["fairness_preemption"]) {
    SUBLET_RETURN_IF_ERROR(ParseFairnessPreemption(fp, config));
  }
  SUBLET_RETURN_IF_ERROR(AddPrincipals(root["tenants"], Role::kTenant, "tenants", config));
  SUBLET_RETURN_IF_ERROR(AddPrincipals(root["admins"], Role::kAdmin, "admins", config));
  if (root["workers"]) SUBLET_RETURN_IF_ERROR(AddWorkers(root["workers"], config));
  return config;
}

}  // namespace

std::string Sha256(std::string_view text) {
  static const int initialised = sodium_init();  // once; thread-safe, idempotent
  (void)initialised;
  std::string digest(crypto_hash_sha256_BYTES, '\0');
  crypto_hash_sha256(reinterpret_cast<unsigned char*>(digest.data()),
                     reinterpret_cast<const unsigned char*>(text.data()), text.size());
  return digest;
}

std::string Sha256Hex(std::string_view text) {
  const std::string digest = Sha256(text);
  std::string hex(2 * digest.size() + 1, '\0');
  sodium_bin2hex(hex.data(), hex.size(), reinterpret_cast<const unsigned char*>(digest.data()),
                 digest.size());
  hex.pop_back();
  return hex;
}

// The digest is looked up, never the token: how long a lookup takes says
// nothing an attacker can use about any token.
std::optional<Principal> Config::Authenticate(std::string_view token) const {
  if (token.empty()) return std::nullopt;
  auto it = token_digests.find(Sha256(token));
  if (it == token_digests.end()) return std::nullopt;
  return it->second;
}

bool Config::AddToken(std::string_view token, Principal principal) {
  if (principal.role == Role::kWorker) worker_token = true;
  return token_digests.emplace(Sha256(token), std::move(principal)).second;
}

TenantPolicy Config::PolicyOf(const std::string& tenant) const {
  auto it = tenant_policies.find(tenant);
  return it == tenant_policies.end() ? TenantPolicy{} : it->second;
}

std::vector<std::string> Config::TenantNames() const {
  std::vector<std::string> names;
  for (const auto& [digest, principal] : token_digests) {
    if (principal.role == Role::kTenant) names.push_back(principal.name);
  }
  std::sort(names.begin(), names.end());
  names.erase(std::unique(names.begin(), names.end()), names.end());
  return names;
}

absl::StatusOr<Config> ParseConfig(std::string_view yaml) {
  try {
    YAML::Node root = YAML::Load(std::string(yaml));
    if (!root.IsMap()) return absl::InvalidArgumentError("config: must be a YAML mapping");
    return ParseRoot(root);
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(fmt::format("config: {}", e.what()));
  }
}

absl::StatusOr<Config> LoadConfig(const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(fmt::format("cannot read config file {}", path));
  std::stringstream text;
  text << in.rdbuf();
  auto config = ParseConfig(text.str());
  if (!config.ok()) {
    return absl::Status(config.status().code(),
                        fmt::format("{}: {}", path, std::string(config.status().message())));
  }
  return config;
}

}  // namespace sublet::coordinator

#include "coordinator/config.h"

#include <fstream>
#include <set>
#include <sstream>

#include <yaml-cpp/yaml.h>

#include "common/duration.h"
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

absl::Status AddPrincipals(const YAML::Node& list, Role role, const std::string& field,
                           Config& config) {
  if (!list) return absl::OkStatus();
  if (!list.IsSequence()) return FieldError(field, "must be a list of {name, token}");
  for (size_t i = 0; i < list.size(); ++i) {
    std::string where = fmt::format("{}[{}]", field, i);
    SUBLET_RETURN_IF_ERROR(CheckKeys(list[i], {"name", "token"}, where));
    SUBLET_ASSIGN_OR_RETURN(std::string name, RequiredString(list[i]["name"], where + ".name"));
    SUBLET_ASSIGN_OR_RETURN(std::string token, RequiredString(list[i]["token"], where + ".token"));
    if (!config.tokens.emplace(token, Principal{role, name}).second) {
      return FieldError(where + ".token", "duplicate token: a token identifies exactly one caller");
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<Config> ParseRoot(const YAML::Node& root) {
  SUBLET_RETURN_IF_ERROR(CheckKeys(
      root, {"storage_root", "heartbeat_timeout", "stop_grace", "max_jobs_per_tenant", "tenants",
             "admins", "workers", "restart_backoff"},
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
  SUBLET_RETURN_IF_ERROR(AddPrincipals(root["tenants"], Role::kTenant, "tenants", config));
  SUBLET_RETURN_IF_ERROR(AddPrincipals(root["admins"], Role::kAdmin, "admins", config));
  if (root["workers"]) {
    SUBLET_RETURN_IF_ERROR(CheckKeys(root["workers"], {"token"}, "workers"));
    SUBLET_ASSIGN_OR_RETURN(std::string token,
                            RequiredString(root["workers"]["token"], "workers.token"));
    if (!config.tokens.emplace(token, Principal{Role::kWorker, "workers"}).second) {
      return FieldError("workers.token", "duplicate token: a token identifies exactly one caller");
    }
  }
  return config;
}

}  // namespace

std::optional<Principal> Config::Authenticate(std::string_view token) const {
  if (token.empty()) return std::nullopt;
  auto it = tokens.find(std::string(token));
  if (it == tokens.end()) return std::nullopt;
  return it->second;
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

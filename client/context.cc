#include "client/context.h"

#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <system_error>

namespace sublet::client {
namespace fs = std::filesystem;

EnvLookup ProcessEnv() {
  return [](const std::string& name) -> std::optional<std::string> {
    const char* value = std::getenv(name.c_str());
    if (value == nullptr || *value == '\0') return std::nullopt;
    return std::string(value);
  };
}

std::string ContextFilePath(const EnvLookup& env) {
  if (auto xdg = env("XDG_CONFIG_HOME")) return *xdg + "/sublet/context.yaml";
  if (auto home = env("HOME")) return *home + "/.config/sublet/context.yaml";
  return "";
}

absl::StatusOr<std::optional<ContextFile>> ReadContextFile(const std::string& path) {
  std::error_code ec;
  if (path.empty() || !fs::exists(path, ec)) return std::nullopt;
  try {
    YAML::Node root = YAML::LoadFile(path);
    if (!root.IsMap()) return absl::InvalidArgumentError(fmt::format("{}: not a YAML map", path));
    ContextFile context;
    if (root["coordinator"]) context.coordinator = root["coordinator"].as<std::string>();
    if (root["token"]) context.token = root["token"].as<std::string>();
    if (root["coordinator_key"]) context.coordinator_key = root["coordinator_key"].as<std::string>();
    return context;
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(fmt::format("{}: {}", path, e.what()));
  }
}

absl::Status WriteContextFile(const std::string& path, const ContextFile& context) {
  std::error_code ec;
  fs::create_directories(fs::path(path).parent_path(), ec);
  if (ec) return absl::InternalError(fmt::format("{}: {}", path, ec.message()));
  YAML::Emitter yaml;
  yaml << YAML::BeginMap << YAML::Key << "coordinator" << YAML::Value << context.coordinator
       << YAML::Key << "coordinator_key" << YAML::Value << context.coordinator_key
       << YAML::Key << "token" << YAML::Value << context.token << YAML::EndMap;
  const std::string temp = path + ".tmp";
  {
    std::ofstream out(temp, std::ios::trunc);
    out << yaml.c_str() << "\n";
    if (!out.flush()) return absl::InternalError(fmt::format("cannot write {}", temp));
  }
  fs::permissions(temp, fs::perms::owner_read | fs::perms::owner_write, ec);  // holds a token
  fs::rename(temp, path, ec);
  if (ec) return absl::InternalError(fmt::format("{}: {}", path, ec.message()));
  return absl::OkStatus();
}

absl::StatusOr<Settings> ResolveSettings(const SettingFlags& flags, const EnvLookup& env) {
  std::optional<std::string> coordinator = flags.coordinator;
  if (!coordinator) coordinator = env("SUBLET_COORDINATOR");
  std::optional<std::string> token = flags.token;
  if (!token) token = env("SUBLET_TOKEN");
  std::optional<std::string> key = flags.coordinator_key;
  if (!key) key = env("SUBLET_COORDINATOR_KEY");

  if (!coordinator || !token || !key) {
    SUBLET_ASSIGN_OR_RETURN(std::optional<ContextFile> context,
                            ReadContextFile(ContextFilePath(env)));
    if (context) {
      if (!coordinator && !context->coordinator.empty()) coordinator = context->coordinator;
      if (!token && !context->token.empty()) token = context->token;
      if (!key && !context->coordinator_key.empty()) key = context->coordinator_key;
    }
  }
  return Settings{coordinator.value_or(kDefaultCoordinator), token.value_or(""),
                  key.value_or("")};
}

}  // namespace sublet::client

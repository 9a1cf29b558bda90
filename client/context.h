// Where the CLI finds the coordinator, its public key and the token. Each
// setting is taken from, in order: its flag, its environment variable
// (SUBLET_COORDINATOR, SUBLET_COORDINATOR_KEY, SUBLET_TOKEN), the context file `sublet up` writes
// (${XDG_CONFIG_HOME:-$HOME/.config}/sublet/context.yaml), the default.
//
// The environment is passed in as a lookup function so that nothing here reads
// process globals behind the caller's back.
#pragma once

#include <functional>
#include <optional>
#include <string>

#include "common/status.h"

namespace sublet::client {

inline constexpr char kDefaultCoordinator[] = "tcp://127.0.0.1:7700";

// Returns the value of an environment variable, or nullopt when unset.
using EnvLookup = std::function<std::optional<std::string>(const std::string& name)>;

// The process environment (std::getenv); empty values count as unset.
EnvLookup ProcessEnv();

// What `sublet up` records for later commands.
struct ContextFile {
  std::string coordinator;
  std::string coordinator_key;
  std::string token;
  bool operator==(const ContextFile&) const = default;
};

// ${XDG_CONFIG_HOME:-$HOME/.config}/sublet/context.yaml; empty when neither
// XDG_CONFIG_HOME nor HOME is set.
std::string ContextFilePath(const EnvLookup& env);

// nullopt when the file does not exist; InvalidArgument naming the file when
// it is not a YAML map of strings.
absl::StatusOr<std::optional<ContextFile>> ReadContextFile(const std::string& path);
// Creates the parent directory; writes atomically (temp file + rename).
absl::Status WriteContextFile(const std::string& path, const ContextFile& context);

// Flag values as parsed; nullopt when the flag was not given.
struct SettingFlags {
  std::optional<std::string> coordinator;
  std::optional<std::string> token;
  std::optional<std::string> coordinator_key;
};

struct Settings {
  std::string coordinator;
  std::string token;            // empty when none was found anywhere
  std::string coordinator_key;  // likewise
};

// Applies flag > env > context file > default per setting. Fails only when
// the context file is needed and unreadable.
absl::StatusOr<Settings> ResolveSettings(const SettingFlags& flags, const EnvLookup& env);

}  // namespace sublet::client

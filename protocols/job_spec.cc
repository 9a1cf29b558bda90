// Job spec validation (shared by the YAML parser and the coordinator) and
// rendering back to YAML. The parser lives in job_spec_yaml.cc.
#include "protocols/job_spec.h"

#include <signal.h>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <array>
#include <string>

#include "common/duration.h"
#include "protocols/internal/spec_text.h"

namespace sublet::protocols {
namespace {

using internal::Escape;
using internal::FieldError;
using internal::Quote;

// Variables the service sets for every rank (DESIGN.md, "Rank environment");
// a spec may not override them.
constexpr std::array<std::string_view, 29> kReservedEnv = {
    "SUBLET_JOB_ID",          "SUBLET_ATTEMPT",          "SUBLET_RANK",
    "SUBLET_WORLD_SIZE",      "SUBLET_LOCAL_RANK",       "SUBLET_LOCAL_WORLD_SIZE",
    "SUBLET_NODE_RANK",       "SUBLET_NODE_NAME",        "SUBLET_NNODES",
    "SUBLET_TENSOR_PARALLEL", "SUBLET_RENDEZVOUS",       "SUBLET_CHECKPOINT_DIR",
    "SUBLET_CHECKPOINT_EVERY", "SUBLET_CHECKPOINT_KEEP", "SUBLET_CONTROL",
    "SUBLET_CONTROL_TOKEN",   "RANK",                    "WORLD_SIZE",
    "LOCAL_RANK",             "LOCAL_WORLD_SIZE",        "NODE_RANK",
    "MASTER_ADDR",            "MASTER_PORT",             "CUDA_VISIBLE_DEVICES",
    "SUBLET_ARRAY_JOB_ID",    "SUBLET_ARRAY_INDEX",      "SUBLET_ARRAY_TASK_COUNT",
    "SUBLET_PREEMPTION_SIGNAL", "SUBLET_LAUNCHER"};

bool IsNameChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
         c == '_' || c == '-';
}

bool IsShellIdentifier(const std::string& key) {
  if (key.empty() || (key[0] >= '0' && key[0] <= '9')) return false;
  return std::all_of(key.begin(), key.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
  });
}

absl::Status ValidateName(const std::string& name, const SpecLimits& limits) {
  if (name.empty()) return FieldError("name", "must not be empty");
  if (name.size() > limits.max_name_bytes) {
    return FieldError("name", fmt::format("longer than {} bytes", limits.max_name_bytes));
  }
  if (!std::all_of(name.begin(), name.end(), IsNameChar)) {
    return FieldError("name",
                      "may hold only letters, digits, '.', '_' and '-', got " + Quote(name));
  }
  return absl::OkStatus();
}

absl::Status CheckRange(std::string_view path, uint32_t value, uint32_t min, uint32_t max) {
  if (value < min) return FieldError(path, fmt::format("must be at least {}", min));
  if (value > max) return FieldError(path, fmt::format("{} exceeds the limit of {}", value, max));
  return absl::OkStatus();
}

// Well-formed UTF-8 (no overlong forms, surrogates or code points past
// U+10FFFF): specs are shown as YAML and JSON, which are UTF-8.
bool IsUtf8(std::string_view s) {
  static constexpr uint32_t kMin[] = {0, 0x80, 0x800, 0x10000};
  size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    size_t n = 0;  // continuation bytes
    if (c >= 0x80) {
      if ((c >> 5) == 0x6) {
        n = 1;
      } else if ((c >> 4) == 0xE) {
        n = 2;
      } else if ((c >> 3) == 0x1E) {
        n = 3;
      } else {
        return false;
      }
    }
    if (i + n >= s.size()) return false;
    uint32_t cp = n == 0 ? c : c & (0x3F >> n);
    for (size_t k = 1; k <= n; ++k) {
      const auto b = static_cast<unsigned char>(s[i + k]);
      if ((b & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (b & 0x3F);
    }
    if (cp < kMin[n] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    i += n + 1;
  }
  return true;
}

absl::Status ValidateCommand(const std::vector<std::string>& command, const SpecLimits& limits) {
  if (command.empty()) return FieldError("command", "must not be empty");
  if (command.size() > limits.max_command_args) {
    return FieldError("command", fmt::format("{} arguments exceed the limit of {}", command.size(),
                                             limits.max_command_args));
  }
  if (command[0].empty()) return FieldError("command[0]", "the program must not be empty");
  for (size_t i = 0; i < command.size(); ++i) {
    std::string path = fmt::format("command[{}]", i);
    if (command[i].size() > limits.max_arg_bytes) {
      return FieldError(path, fmt::format("longer than {} bytes", limits.max_arg_bytes));
    }
    if (command[i].find('\0') != std::string::npos)
      return FieldError(path, "must not contain NUL bytes");
    if (!IsUtf8(command[i])) return FieldError(path, "must be valid UTF-8");
  }
  return absl::OkStatus();
}

absl::Status ValidateEnvEntry(const std::string& key, const std::string& value) {
  std::string path = "env." + Escape(key);
  if (!IsShellIdentifier(key)) {
    return FieldError(
        path, "not a valid variable name (letters, digits and '_', not starting with a digit)");
  }
  if (std::find(kReservedEnv.begin(), kReservedEnv.end(), key) != kReservedEnv.end()) {
    return FieldError(path, "reserved: the service sets it for every rank");
  }
  if (value.find('\0') != std::string::npos) return FieldError(path, "must not contain NUL bytes");
  if (!IsUtf8(value)) return FieldError(path, "must be valid UTF-8");
  return absl::OkStatus();
}

absl::Status ValidateEnv(const std::map<std::string, std::string>& env, const SpecLimits& limits) {
  if (env.size() > limits.max_env_entries) {
    return FieldError("env", fmt::format("{} entries exceed the limit of {}", env.size(),
                                         limits.max_env_entries));
  }
  size_t bytes = 0;
  for (const auto& [key, value] : env) {
    SUBLET_RETURN_IF_ERROR(ValidateEnvEntry(key, value));
    bytes += key.size() + value.size() + 2;  // "KEY=VALUE\0"
  }
  if (bytes > limits.max_env_bytes) {
    return FieldError("env",
                      fmt::format("{} bytes exceed the limit of {}", bytes, limits.max_env_bytes));
  }
  return absl::OkStatus();
}

absl::Status ValidatePlacement(const JobSpec& spec, const SpecLimits& limits) {
  SUBLET_RETURN_IF_ERROR(CheckRange("resources.nodes", spec.nodes, 1, limits.max_nodes));
  SUBLET_RETURN_IF_ERROR(
      CheckRange("resources.gpus_per_node", spec.gpus_per_node, 1, limits.max_gpus_per_node));
  SUBLET_RETURN_IF_ERROR(CheckRange("parallelism.tensor", spec.tensor_parallel, 1, UINT32_MAX));
  if (spec.gpus_per_node % spec.tensor_parallel != 0) {
    return FieldError("parallelism.tensor", fmt::format("{} does not divide gpus_per_node {}",
                                                        spec.tensor_parallel, spec.gpus_per_node));
  }
  if (spec.elastic_start_any && spec.elastic_min_nodes == 0) {
    return FieldError("elastic.start", "any needs elastic.min_nodes");
  }
  if (spec.elastic_min_nodes > spec.nodes) {
    return FieldError("elastic.min_nodes", fmt::format("{} exceeds resources.nodes {}",
                                                       spec.elastic_min_nodes, spec.nodes));
  }
  return absl::OkStatus();
}

absl::Status ValidatePolicy(const JobSpec& spec, const SpecLimits& limits) {
  if (spec.checkpoint_keep < 1) return FieldError("checkpoint.keep", "must be at least 1");
  if (PriorityName(spec.priority) == "unknown") {
    return FieldError("priority", fmt::format("unknown value {}", static_cast<int>(spec.priority)));
  }
  SUBLET_RETURN_IF_ERROR(CheckRange("max_restarts", spec.max_restarts, 0, limits.max_restarts));
  if (PreemptionSignalNumber(spec.preemption_signal) == 0) {
    return FieldError("preemption.signal",
                      fmt::format("'{}' is not one of {}", spec.preemption_signal,
                                  fmt::join(PreemptionSignalNames(), ", ")));
  }
  if (!spec.launcher.empty() && !spec.Torchrun()) {
    return FieldError("launcher", fmt::format("'{}' is not torchrun (leave it out for one "
                                              "process per GPU)", spec.launcher));
  }
  if (spec.Torchrun() && spec.command.size() < 2) {
    return FieldError("command", "launcher torchrun runs [PYTHON, SCRIPT, ARGS...]: name the "
                                 "interpreter and the script");
  }
  if (spec.depends_on.size() > limits.max_depends_on) {
    return FieldError("depends_on", fmt::format("{} entries exceed the limit of {}",
                                                spec.depends_on.size(), limits.max_depends_on));
  }
  for (size_t i = 0; i < spec.depends_on.size(); ++i) {
    const Dependency& d = spec.depends_on[i];
    const std::string path = fmt::format("depends_on[{}]", i);
    if (d.job == 0) return FieldError(path + ".job", "must be a job id (at least 1)");
    if (DependencyWhenName(d.when) == "unknown") {
      return FieldError(path + ".when", fmt::format("unknown value {}", static_cast<int>(d.when)));
    }
    for (size_t j = 0; j < i; ++j) {
      if (spec.depends_on[j].job == d.job) {
        return FieldError(path + ".job", fmt::format("job {} is already depends_on[{}]", d.job, j));
      }
    }
  }
  if (!spec.array.empty()) SUBLET_RETURN_IF_ERROR(ParseArraySpec(spec.array, limits).status());
  for (auto [field, value] : {std::pair{"time_limit", spec.time_limit},
                              std::pair{"progress_timeout", spec.progress_timeout}}) {
    if (value < absl::ZeroDuration()) return FieldError(field, "must not be negative");
    if (value > limits.max_time_limit) {
      return FieldError(field, fmt::format("{} exceeds the limit of {}",
                                           sublet::FormatDuration(value),
                                           sublet::FormatDuration(limits.max_time_limit)));
    }
  }
  return absl::OkStatus();
}

}  // namespace

std::string_view PriorityName(Priority p) {
  switch (p) {
    case Priority::kLow:
      return "low";
    case Priority::kNormal:
      return "normal";
    case Priority::kHigh:
      return "high";
  }
  return "unknown";
}

std::string_view DependencyWhenName(DependencyWhen when) {
  switch (when) {
    case DependencyWhen::kSucceeded:
      return "succeeded";
    case DependencyWhen::kFailed:
      return "failed";
    case DependencyWhen::kAny:
      return "any";
  }
  return "unknown";
}

std::optional<DependencyWhen> DependencyWhenFromName(std::string_view name) {
  for (DependencyWhen w :
       {DependencyWhen::kSucceeded, DependencyWhen::kFailed, DependencyWhen::kAny}) {
    if (name == DependencyWhenName(w)) return w;
  }
  return std::nullopt;
}

namespace {

// A plain decimal number of at most `max`; false for anything else.
bool ParseArrayNumber(std::string_view text, uint32_t max, uint32_t& out) {
  if (text.empty() || text.size() > 10) return false;
  uint64_t value = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return false;
    value = value * 10 + static_cast<uint64_t>(c - '0');
  }
  if (value > max) return false;
  out = static_cast<uint32_t>(value);
  return true;
}

}  // namespace

absl::StatusOr<ArraySpec> ParseArraySpec(std::string_view text, const SpecLimits& limits) {
  ArraySpec out;
  if (text.size() > 1024) return FieldError("array", "longer than 1024 bytes");
  std::string_view list = text;
  if (const size_t pct = text.find('%'); pct != std::string_view::npos) {
    list = text.substr(0, pct);
    std::string_view n = text.substr(pct + 1);
    if (!ParseArrayNumber(n, UINT32_MAX, out.max_running) || out.max_running == 0) {
      return FieldError("array", fmt::format("'%{}' must be a whole number of at least 1 (the "
                                             "tasks that may run at once)",
                                             Escape(std::string(n))));
    }
  }
  if (list.empty()) return FieldError("array", "names no index, e.g. 0-99 or 0-99%8");
  const uint32_t max = limits.max_array_index;
  std::vector<uint32_t> indices;
  size_t start = 0;
  while (start <= list.size()) {
    size_t comma = list.find(',', start);
    if (comma == std::string_view::npos) comma = list.size();
    const std::string_view item = list.substr(start, comma - start);
    const std::string shown = Escape(std::string(item));
    std::string_view range = item;
    uint32_t step = 1;
    if (const size_t colon = item.find(':'); colon != std::string_view::npos) {
      range = item.substr(0, colon);
      if (!ParseArrayNumber(item.substr(colon + 1), max, step) || step == 0) {
        return FieldError("array", fmt::format("'{}': the step after ':' must be a whole number "
                                               "from 1 to {}", shown, max));
      }
    }
    uint32_t first = 0;
    uint32_t last = 0;
    const size_t dash = range.find('-');
    const bool ok = dash == std::string_view::npos
                        ? ParseArrayNumber(range, max, first) && (last = first, true)
                        : ParseArrayNumber(range.substr(0, dash), max, first) &&
                              ParseArrayNumber(range.substr(dash + 1), max, last);
    if (!ok) {
      return FieldError("array", fmt::format("'{}' is not an index or a range of indices from 0 "
                                             "to {} (e.g. 7, 0-99 or 0-99:10)", shown, max));
    }
    if (last < first) {
      return FieldError("array", fmt::format("'{}': the range ends before it starts", shown));
    }
    // Counted before any index is stored: a huge range costs nothing.
    if ((last - first) / step + 1 > limits.max_array_tasks - std::min(limits.max_array_tasks,
                                                                       indices.size())) {
      return FieldError("array", fmt::format("more than {} tasks", limits.max_array_tasks));
    }
    for (uint64_t i = first; i <= last; i += step) indices.push_back(static_cast<uint32_t>(i));
    start = comma + 1;
  }
  std::sort(indices.begin(), indices.end());
  indices.erase(std::unique(indices.begin(), indices.end()), indices.end());
  out.indices = std::move(indices);
  return out;
}

const std::vector<std::string_view>& PreemptionSignalNames() {
  static const std::vector<std::string_view> names = {"SIGUSR1", "SIGUSR2", "SIGTERM", "SIGINT",
                                                      "SIGHUP"};
  return names;
}

int PreemptionSignalNumber(std::string_view name) {
  if (name.empty() || name == "SIGUSR1") return SIGUSR1;
  if (name == "SIGUSR2") return SIGUSR2;
  if (name == "SIGTERM") return SIGTERM;
  if (name == "SIGINT") return SIGINT;
  if (name == "SIGHUP") return SIGHUP;
  return 0;
}

absl::Status ValidateJobSpec(const JobSpec& spec, const SpecLimits& limits) {
  SUBLET_RETURN_IF_ERROR(ValidateName(spec.name, limits));
  SUBLET_RETURN_IF_ERROR(ValidatePlacement(spec, limits));
  SUBLET_RETURN_IF_ERROR(ValidateCommand(spec.command, limits));
  SUBLET_RETURN_IF_ERROR(ValidateEnv(spec.env, limits));
  return ValidatePolicy(spec, limits);
}

std::string JobSpecToYaml(const JobSpec& spec) {
  YAML::Emitter out;
  out << YAML::BeginMap;
  out << YAML::Key << "name" << YAML::Value << spec.name;
  out << YAML::Key << "resources" << YAML::Value << YAML::Flow << YAML::BeginMap;
  out << YAML::Key << "nodes" << YAML::Value << spec.nodes;
  out << YAML::Key << "gpus_per_node" << YAML::Value << spec.gpus_per_node << YAML::EndMap;
  out << YAML::Key << "command" << YAML::Value << YAML::Flow << spec.command;
  if (!spec.env.empty()) out << YAML::Key << "env" << YAML::Value << YAML::Flow << spec.env;
  out << YAML::Key << "parallelism" << YAML::Value << YAML::Flow << YAML::BeginMap;
  out << YAML::Key << "tensor" << YAML::Value << spec.tensor_parallel << YAML::EndMap;
  out << YAML::Key << "checkpoint" << YAML::Value << YAML::Flow << YAML::BeginMap;
  out << YAML::Key << "every_steps" << YAML::Value << spec.checkpoint_every_steps;
  out << YAML::Key << "keep" << YAML::Value << spec.checkpoint_keep << YAML::EndMap;
  out << YAML::Key << "priority" << YAML::Value << std::string(PriorityName(spec.priority));
  out << YAML::Key << "max_restarts" << YAML::Value << spec.max_restarts;
  if (spec.elastic_min_nodes > 0) {
    out << YAML::Key << "elastic" << YAML::Value << YAML::Flow << YAML::BeginMap;
    out << YAML::Key << "min_nodes" << YAML::Value << spec.elastic_min_nodes;
    if (spec.elastic_start_any) out << YAML::Key << "start" << YAML::Value << "any";
    out << YAML::EndMap;
  }
  if (spec.time_limit != absl::ZeroDuration()) {
    out << YAML::Key << "time_limit" << YAML::Value << sublet::FormatDuration(spec.time_limit);
  }
  if (spec.progress_timeout != absl::ZeroDuration()) {
    out << YAML::Key << "progress_timeout" << YAML::Value
        << sublet::FormatDuration(spec.progress_timeout);
  }
  if (!spec.launcher.empty()) out << YAML::Key << "launcher" << YAML::Value << spec.launcher;
  if (!spec.preemption_signal.empty()) {
    out << YAML::Key << "preemption" << YAML::Value << YAML::Flow << YAML::BeginMap;
    out << YAML::Key << "signal" << YAML::Value << spec.preemption_signal << YAML::EndMap;
  }
  if (!spec.depends_on.empty()) {
    out << YAML::Key << "depends_on" << YAML::Value << YAML::BeginSeq;
    for (const Dependency& d : spec.depends_on) {
      out << YAML::Flow << YAML::BeginMap << YAML::Key << "job" << YAML::Value << d.job;
      out << YAML::Key << "when" << YAML::Value << std::string(DependencyWhenName(d.when))
          << YAML::EndMap;
    }
    out << YAML::EndSeq;
  }
  if (!spec.array.empty()) {
    out << YAML::Key << "array" << YAML::Value << YAML::DoubleQuoted << spec.array;
  }
  out << YAML::EndMap;
  return std::string(out.c_str()) + "\n";
}

}  // namespace sublet::protocols

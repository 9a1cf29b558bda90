// ParseJobSpecYaml: YAML text (untrusted) -> JobSpec. The only place that
// reads a spec's YAML and the only place yaml-cpp exceptions are caught.
//
// Every field is read by a typed reader that names the field path on error;
// unknown fields at any level are errors, so a typo never silently becomes a
// default. After reading, ValidateJobSpec checks sizes and relations.
#include <fmt/format.h>
#include <yaml-cpp/depthguard.h>
#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/yaml.h>

#include <cstdint>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "common/duration.h"
#include "protocols/internal/spec_text.h"
#include "protocols/job_spec.h"

namespace sublet::protocols {
namespace {

using internal::Escape;
using internal::FieldError;
using internal::Quote;

std::string Where(const YAML::Mark& mark) {
  return fmt::format("line {}, column {}", mark.line + 1, mark.column + 1);
}

std::string Join(const std::string& path, const std::string& key) {
  return path.empty() ? key : path + "." + key;
}

bool IsQuoted(const YAML::Node& node) { return node.Tag() == "!"; }

absl::Status ReadString(const YAML::Node& node, const std::string& path, std::string& out) {
  if (!node.IsScalar()) return FieldError(path, "expected a string at " + Where(node.Mark()));
  out = node.Scalar();
  return absl::OkStatus();
}

// A plain (unquoted) decimal integer in [0, 2^32).
absl::Status ReadUint32(const YAML::Node& node, const std::string& path, uint32_t& out) {
  if (!node.IsScalar()) return FieldError(path, "expected an integer at " + Where(node.Mark()));
  const std::string& text = node.Scalar();
  bool digits = !text.empty() && text.find_first_not_of("0123456789") == std::string::npos;
  if (!digits || IsQuoted(node)) {
    bool negative = text.size() > 1 && text[0] == '-' &&
                    text.find_first_not_of("0123456789", 1) == std::string::npos;
    if (negative && !IsQuoted(node)) return FieldError(path, "must not be negative, got " + text);
    return FieldError(path, "expected a non-negative integer, got " + Quote(text));
  }
  uint64_t value = 0;
  for (char c : text) {
    value = value * 10 + static_cast<uint64_t>(c - '0');
    if (value > UINT32_MAX) return FieldError(path, Escape(text) + " is out of range");
  }
  out = static_cast<uint32_t>(value);
  return absl::OkStatus();
}

absl::Status ReadPriority(const YAML::Node& node, const std::string& path, Priority& out) {
  std::string text;
  SUBLET_RETURN_IF_ERROR(ReadString(node, path, text));
  for (Priority p : {Priority::kLow, Priority::kNormal, Priority::kHigh}) {
    if (text == PriorityName(p)) {
      out = p;
      return absl::OkStatus();
    }
  }
  return FieldError(path, "must be one of low, normal, high, got " + Quote(text));
}

absl::Status ReadDuration(const YAML::Node& node, const std::string& path, absl::Duration& out) {
  std::string text;
  SUBLET_RETURN_IF_ERROR(ReadString(node, path, text));
  absl::StatusOr<absl::Duration> duration = ParseDuration(text);
  if (!duration.ok()) return FieldError(path, std::string(duration.status().message()));
  out = *duration;
  return absl::OkStatus();
}

// Calls `read(key, value)` for each entry of the mapping at `path`; refuses
// non-mappings, non-string keys and duplicate keys. `seen` gets every key.
template <typename ReadField>
absl::Status ForEachField(const YAML::Node& node, const std::string& path,
                          std::set<std::string>& seen, ReadField read) {
  if (!node.IsMap()) return FieldError(path, "expected a mapping at " + Where(node.Mark()));
  for (const auto& entry : node) {
    if (!entry.first.IsScalar()) {
      return FieldError(path, "field names must be strings, at " + Where(entry.first.Mark()));
    }
    const std::string& key = entry.first.Scalar();
    std::string field = Join(path, Escape(key));
    if (!seen.insert(key).second) return FieldError(field, "duplicate field");
    SUBLET_RETURN_IF_ERROR(read(key, field, entry.second));
  }
  return absl::OkStatus();
}

absl::Status RequireFields(const std::string& path, const std::set<std::string>& seen,
                           std::initializer_list<const char*> required) {
  for (const char* name : required) {
    if (!seen.count(name)) return FieldError(Join(path, name), "required field is missing");
  }
  return absl::OkStatus();
}

struct IntField {
  const char* name;
  uint32_t* value;
};

// A mapping whose fields are all integers, e.g. `resources` or `checkpoint`.
absl::Status ReadIntSection(const YAML::Node& node, const std::string& path,
                            std::initializer_list<IntField> fields, bool all_required) {
  std::set<std::string> seen;
  SUBLET_RETURN_IF_ERROR(
      ForEachField(node, path, seen,
                   [&](const std::string& key, const std::string& field, const YAML::Node& value) {
                     for (const IntField& f : fields) {
                       if (key == f.name) return ReadUint32(value, field, *f.value);
                     }
                     return FieldError(field, "unknown field");
                   }));
  if (!all_required) return absl::OkStatus();
  for (const IntField& f : fields) {
    if (!seen.count(f.name)) return FieldError(Join(path, f.name), "required field is missing");
  }
  return absl::OkStatus();
}

absl::Status ReadCommand(const YAML::Node& node, const SpecLimits& limits,
                         std::vector<std::string>& out) {
  if (!node.IsSequence())
    return FieldError("command", "expected a list of strings at " + Where(node.Mark()));
  if (node.size() > limits.max_command_args) {
    return FieldError("command", fmt::format("{} arguments exceed the limit of {}", node.size(),
                                             limits.max_command_args));
  }
  for (size_t i = 0; i < node.size(); ++i) {
    SUBLET_RETURN_IF_ERROR(ReadString(node[i], fmt::format("command[{}]", i), out.emplace_back()));
  }
  return absl::OkStatus();
}

absl::Status ReadEnv(const YAML::Node& node, const SpecLimits& limits,
                     std::map<std::string, std::string>& out) {
  if (node.IsMap() && node.size() > limits.max_env_entries) {
    return FieldError("env", fmt::format("{} entries exceed the limit of {}", node.size(),
                                         limits.max_env_entries));
  }
  std::set<std::string> seen;
  return ForEachField(node, "env", seen,
                      [&](const std::string& key, const std::string& field,
                          const YAML::Node& value) { return ReadString(value, field, out[key]); });
}

// A job id: a plain decimal integer in [1, 2^64).
absl::Status ReadJobId(const YAML::Node& node, const std::string& path, uint64_t& out) {
  if (!node.IsScalar()) return FieldError(path, "expected a job id at " + Where(node.Mark()));
  const std::string& text = node.Scalar();
  if (IsQuoted(node) || text.empty() || text.find_first_not_of("0123456789") != std::string::npos) {
    return FieldError(path, "expected a job id (a whole number), got " + Quote(text));
  }
  if (!absl::SimpleAtoi(text, &out) || out == 0) {
    return FieldError(path, Escape(text) + " is not a job id");
  }
  return absl::OkStatus();
}

// depends_on: [{job: 12, when: succeeded}, {job: 13}]  (when defaults to
// succeeded, Slurm's afterok).
absl::Status ReadDependsOn(const YAML::Node& node, const SpecLimits& limits,
                           std::vector<Dependency>& out) {
  if (!node.IsSequence()) {
    return FieldError("depends_on",
                      "expected a list of {job: ID, when: succeeded|failed|any} at " +
                          Where(node.Mark()));
  }
  if (node.size() > limits.max_depends_on) {
    return FieldError("depends_on", fmt::format("{} entries exceed the limit of {}", node.size(),
                                                limits.max_depends_on));
  }
  for (size_t i = 0; i < node.size(); ++i) {
    const std::string path = fmt::format("depends_on[{}]", i);
    Dependency& d = out.emplace_back();
    std::set<std::string> seen;
    SUBLET_RETURN_IF_ERROR(ForEachField(
        node[i], path, seen,
        [&](const std::string& key, const std::string& field,
            const YAML::Node& value) -> absl::Status {
          if (key == "job") return ReadJobId(value, field, d.job);
          if (key == "when") {
            std::string when;
            SUBLET_RETURN_IF_ERROR(ReadString(value, field, when));
            std::optional<DependencyWhen> named = DependencyWhenFromName(when);
            if (!named) {
              return FieldError(field, "must be one of succeeded, failed, any, got " + Quote(when));
            }
            d.when = *named;
            return absl::OkStatus();
          }
          return FieldError(field, "unknown field");
        }));
    SUBLET_RETURN_IF_ERROR(RequireFields(path, seen, {"job"}));
  }
  return absl::OkStatus();
}

absl::Status ReadTopLevel(const YAML::Node& root, const SpecLimits& limits, JobSpec& spec) {
  std::set<std::string> seen;
  SUBLET_RETURN_IF_ERROR(ForEachField(
      root, "", seen,
      [&](const std::string& key, const std::string& field,
          const YAML::Node& value) -> absl::Status {
        if (key == "name") return ReadString(value, field, spec.name);
        if (key == "resources") {
          return ReadIntSection(
              value, field, {{"nodes", &spec.nodes}, {"gpus_per_node", &spec.gpus_per_node}}, true);
        }
        if (key == "command") return ReadCommand(value, limits, spec.command);
        if (key == "env") return ReadEnv(value, limits, spec.env);
        if (key == "parallelism")
          return ReadIntSection(value, field, {{"tensor", &spec.tensor_parallel}}, false);
        if (key == "checkpoint") {
          return ReadIntSection(
              value, field,
              {{"every_steps", &spec.checkpoint_every_steps}, {"keep", &spec.checkpoint_keep}},
              false);
        }
        if (key == "priority") return ReadPriority(value, field, spec.priority);
        if (key == "max_restarts") return ReadUint32(value, field, spec.max_restarts);
        if (key == "elastic") {
          std::set<std::string> seen_here;
          return ForEachField(
              value, field, seen_here,
              [&](const std::string& k, const std::string& f, const YAML::Node& v) -> absl::Status {
                if (k == "min_nodes") return ReadUint32(v, f, spec.elastic_min_nodes);
                if (k == "start") {
                  std::string start;
                  SUBLET_RETURN_IF_ERROR(ReadString(v, f, start));
                  if (start != "full" && start != "any") {
                    return FieldError(f, fmt::format("'{}' is not full or any", start));
                  }
                  spec.elastic_start_any = start == "any";
                  return absl::OkStatus();
                }
                return FieldError(f, "unknown field");
              });
        }
        if (key == "time_limit") return ReadDuration(value, field, spec.time_limit);
        if (key == "progress_timeout") return ReadDuration(value, field, spec.progress_timeout);
        if (key == "preemption") {
          std::set<std::string> seen_here;
          return ForEachField(value, field, seen_here,
                              [&](const std::string& k, const std::string& f,
                                  const YAML::Node& v) -> absl::Status {
                                if (k == "signal") return ReadString(v, f, spec.preemption_signal);
                                return FieldError(f, "unknown field");
                              });
        }
        if (key == "depends_on") return ReadDependsOn(value, limits, spec.depends_on);
        if (key == "array") return ReadString(value, field, spec.array);
        if (key == "launcher") return ReadString(value, field, spec.launcher);
        return FieldError(field, "unknown field");
      }));
  return RequireFields("", seen, {"name", "resources", "command"});
}

// Thrown by YamlFence to stop yaml-cpp's parser; caught in ParseJobSpecYaml.
struct FenceRefusal {
  absl::Status status;
};

// A first pass over the text's YAML events that builds nothing, so yaml-cpp
// allocates for nodes only once the text is known to be small in YAML terms:
//  - a document that starts where the previous one did is a token no node
//    can start with: yaml-cpp 0.7 emits an empty document for it without
//    consuming it, forever (a ',' outside [] or {}, e.g. the text ","; LoadAll
//    then collects empty documents until memory runs out, jbeder/yaml-cpp#1040);
//  - at most limits.max_yaml_nodes nodes: an alias counts as one node (aliases
//    share the anchored node, they are never expanded), and the readers below
//    look only at a bounded number of them;
//  - lists and mappings nest at most limits.max_yaml_depth deep (yaml-cpp's own
//    guard allows 2000 frames of recursion).
class YamlFence final : public YAML::EventHandler {
 public:
  YamlFence(std::string_view yaml, const SpecLimits& limits) : yaml_(yaml), limits_(limits) {}

  int documents() const { return documents_; }

  void OnDocumentStart(const YAML::Mark& mark) override {
    if (documents_ > 0 && mark.pos == last_document_pos_) {
      const bool comma = mark.pos >= 0 && static_cast<size_t>(mark.pos) < yaml_.size() &&
                         yaml_[static_cast<size_t>(mark.pos)] == ',';
      throw FenceRefusal{FieldError(
          "spec", "invalid YAML at " + Where(mark) +
                      (comma ? ": ',' outside [...] or {...} (quote a value that starts with it)"
                             : ": unexpected token"))};
    }
    last_document_pos_ = mark.pos;
    ++documents_;
  }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark& mark, YAML::anchor_t) override { Count(mark); }
  void OnAlias(const YAML::Mark& mark, YAML::anchor_t) override { Count(mark); }
  void OnScalar(const YAML::Mark& mark, const std::string&, YAML::anchor_t,
                const std::string&) override {
    Count(mark);
  }
  void OnSequenceStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t,
                       YAML::EmitterStyle::value) override {
    Open(mark);
  }
  void OnSequenceEnd() override { --depth_; }
  void OnMapStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t,
                  YAML::EmitterStyle::value) override {
    Open(mark);
  }
  void OnMapEnd() override { --depth_; }

 private:
  void Count(const YAML::Mark& mark) {
    if (++nodes_ > limits_.max_yaml_nodes) {
      throw FenceRefusal{FieldError("spec", fmt::format("more than {} YAML nodes (at {})",
                                                        limits_.max_yaml_nodes, Where(mark)))};
    }
  }
  void Open(const YAML::Mark& mark) {
    Count(mark);
    if (++depth_ > limits_.max_yaml_depth) {
      throw FenceRefusal{
          FieldError("spec", fmt::format("lists and mappings nested more than {} deep at {}",
                                         limits_.max_yaml_depth, Where(mark)))};
    }
  }

  std::string_view yaml_;
  const SpecLimits& limits_;
  int documents_ = 0;
  int last_document_pos_ = -1;
  size_t nodes_ = 0;
  size_t depth_ = 0;
};

// Loads the text's one document, after YamlFence has walked all of it (never
// YAML::LoadAll, see YamlFence). Throws YAML::Exception and FenceRefusal.
absl::StatusOr<YAML::Node> LoadOneDocument(std::string_view yaml, const SpecLimits& limits) {
  YamlFence fence(yaml, limits);
  {
    std::stringstream in{std::string(yaml)};
    YAML::Parser parser(in);
    while (parser.HandleNextDocument(fence)) {
    }
  }
  if (fence.documents() > 1)
    return FieldError("spec", fmt::format("expected one YAML document, got {}", fence.documents()));
  if (fence.documents() == 0) return FieldError("spec", "empty document");
  YAML::Node doc = YAML::Load(std::string(yaml));
  if (doc.IsNull()) return FieldError("spec", "empty document");
  if (!doc.IsMap())
    return FieldError("spec", "expected a mapping of fields at " + Where(doc.Mark()));
  return doc;
}

}  // namespace

absl::StatusOr<JobSpec> ParseJobSpecYaml(std::string_view yaml, const SpecLimits& limits) {
  if (yaml.size() > limits.max_spec_bytes) {
    return FieldError(
        "spec", fmt::format("{} bytes exceed the limit of {}", yaml.size(), limits.max_spec_bytes));
  }
  JobSpec spec;
  try {
    SUBLET_ASSIGN_OR_RETURN(YAML::Node root, LoadOneDocument(yaml, limits));
    SUBLET_RETURN_IF_ERROR(ReadTopLevel(root, limits, spec));
  } catch (const FenceRefusal& e) {
    return e.status;
  } catch (const YAML::DeepRecursion& e) {  // its message says "bad file"
    return FieldError("spec", "invalid YAML at " + Where(e.mark) + ": nested too deeply");
  } catch (const YAML::Exception& e) {
    if (e.mark.is_null()) return FieldError("spec", "invalid YAML: " + e.msg);
    return FieldError("spec", "invalid YAML at " + Where(e.mark) + ": " + e.msg);
  }
  SUBLET_RETURN_IF_ERROR(ValidateJobSpec(spec, limits));
  return spec;
}

}  // namespace sublet::protocols

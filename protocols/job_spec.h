// The job spec: what a tenant asks for. Parsed from YAML (untrusted) in one
// place, validated in one place, and carried on the wire as Cap'n Proto
// (protocols/sublet.capnp, struct JobSpec). The coordinator validates again on
// receipt: it never trusts the client's checks.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/time/time.h"
#include "common/status.h"

namespace sublet::protocols {

enum class Priority : uint8_t { kLow = 0, kNormal = 1, kHigh = 2 };
std::string_view PriorityName(Priority p);

// depends_on[].when (Slurm's afterok / afternotok / afterany): the job may
// start once the job it names has succeeded; has ended other than by success
// (failed or cancelled); has ended at all.
enum class DependencyWhen : uint8_t { kSucceeded = 0, kFailed = 1, kAny = 2 };
std::string_view DependencyWhenName(DependencyWhen when);
// The value named `name` ("succeeded", "failed", "any"); nullopt otherwise.
std::optional<DependencyWhen> DependencyWhenFromName(std::string_view name);

// One entry of depends_on. A job id that is an array's (its first task's id)
// stands for every task of the array.
struct Dependency {
  uint64_t job = 0;
  DependencyWhen when = DependencyWhen::kSucceeded;
  bool operator==(const Dependency&) const = default;
};

struct JobSpec {
  std::string name;
  uint32_t nodes = 1;          // gang size: all or nothing
  uint32_t gpus_per_node = 1;  // one rank per GPU
  std::vector<std::string> command;
  std::map<std::string, std::string> env;
  uint32_t tensor_parallel = 1;             // tensor groups stay inside a node
  uint32_t checkpoint_every_steps = 0;      // 0: the trainer's default
  uint32_t checkpoint_keep = 3;
  Priority priority = Priority::kNormal;
  uint32_t max_restarts = 0;                // failures only; preemptions never count
  uint32_t elastic_min_nodes = 0;           // 0: not elastic
  // elastic.start: "full" (default) waits for all `nodes` at the first
  // start; "any" starts on as few as min_nodes when that is all there is
  // (torchrun --nnodes=MIN:MAX). Either way the job grows back to `nodes` at
  // its next restart or preemption when capacity allows.
  bool elastic_start_any = false;
  absl::Duration time_limit = absl::ZeroDuration();  // zero: no limit
  // Restart the gang when no rank has reported progress for this long (the
  // job's ranks must report through SUBLET_CONTROL); zero: never.
  absl::Duration progress_timeout = absl::ZeroDuration();
  // The signal a preemption notice sends to every process of the job on a
  // node ("preemption: {signal: SIGTERM}" for launchers such as torchrun that
  // forward SIGTERM and ignore SIGUSR1). "": SIGUSR1. One of
  // PreemptionSignalNames().
  std::string preemption_signal;
  // Jobs of the same tenant this one waits for (all of them, in any order).
  std::vector<Dependency> depends_on;
  // A job array (Slurm's --array): "0-99%8" submits one job per index, at
  // most 8 of them running at once. "": not an array. See ParseArraySpec.
  std::string array;
  // How the worker starts the job on each node: "" one process per GPU (the
  // rank environment names it); "torchrun": one torchrun per node with
  // --nproc-per-node = gpus_per_node and a static rendezvous at the job's
  // master (`command` is [PYTHON, SCRIPT or -m MODULE, ARGS...]).
  std::string launcher;

  uint32_t WorldSize() const { return nodes * gpus_per_node; }
  bool Torchrun() const { return launcher == "torchrun"; }
  bool operator==(const JobSpec&) const = default;
};

// The signals `preemption.signal` may name, and the number of one ("" is
// SIGUSR1); 0 for a name not in the list.
const std::vector<std::string_view>& PreemptionSignalNames();
int PreemptionSignalNumber(std::string_view name);

// A parsed `array`: the indices, ascending and distinct, and how many tasks
// may run at once (0: no limit).
struct ArraySpec {
  std::vector<uint32_t> indices;
  uint32_t max_running = 0;
};

struct SpecLimits;

// "LIST[%N]": LIST is comma-separated items, each an index "7", a range
// "0-99" or a stepped range "0-99:10"; "%N" runs at most N tasks at once.
// Errors are InvalidArgument starting with "array: ".
absl::StatusOr<ArraySpec> ParseArraySpec(std::string_view text, const SpecLimits& limits);

// Limits on what a spec may ask for; anything beyond is refused with the field
// named. They bound the work and memory one submission can cost the service.
struct SpecLimits {
  uint32_t max_nodes = 4096;
  uint32_t max_gpus_per_node = 64;
  size_t max_name_bytes = 128;
  size_t max_command_args = 256;
  size_t max_arg_bytes = 4096;
  size_t max_env_entries = 256;
  size_t max_env_bytes = 8192;
  size_t max_spec_bytes = 256 * 1024;
  // YAML nodes (scalars, nulls, aliases, lists, mappings) in the whole text,
  // and how deep lists and mappings may nest. The biggest spec the other
  // limits allow has about 800 nodes, nested 2 deep. Counted before any node
  // is built, they bound what yaml-cpp allocates for a spec to a few MiB.
  size_t max_yaml_nodes = 4096;
  size_t max_yaml_depth = 16;
  uint32_t max_restarts = 1000;
  size_t max_depends_on = 64;
  size_t max_array_tasks = 1000;      // Slurm's MaxArraySize is 1001 by default
  uint32_t max_array_index = 999'999;
  // The specs of all tasks of one array together (each task stores its spec).
  size_t max_array_spec_bytes = 32 << 20;
  absl::Duration max_time_limit = absl::Hours(24 * 365);
};

// Parses YAML text into a spec and validates it. Errors are InvalidArgument and
// start with the field path, e.g. "resources.nodes: must be at least 1".
absl::StatusOr<JobSpec> ParseJobSpecYaml(std::string_view yaml, const SpecLimits& limits = {});

// Checks sizes, names, command, env, tensor divisibility. Used by the parser
// and by the coordinator on every submission it receives.
absl::Status ValidateJobSpec(const JobSpec& spec, const SpecLimits& limits = {});

// Renders the spec back to YAML (for `sublet show -o json` and the store).
std::string JobSpecToYaml(const JobSpec& spec);

}  // namespace sublet::protocols

// Rank confinement: what is done to a rank's process between fork and exec
// (later: its uid, namespaces, seccomp filter, cgroup, devices), behind an
// interface the process launcher calls and tests can fake.
//
// The contract is split along fork, because after fork only
// async-signal-safe code may run in the child:
//   1. Parent side, before fork: Confinement::Prepare(spec) may allocate,
//      read files, open descriptors and fail. Everything the child will need
//      is built here, into the returned PreparedConfinement. An error fails
//      the launch: nothing is forked and Launch returns that status.
//   2. Child side: PreparedConfinement::Apply() runs once in the child, after
//      stdin/stdout/stderr point at /dev/null and the rank's log and the
//      signal state is reset, right before chdir and exec. It only makes
//      async-signal-safe calls (no allocation, locks, stdio or logging) on
//      what Prepare built. A failure is fail-closed: the rank never runs; the
//      launcher writes "sublet-worker: cannot set up the process: <step>:
//      <reason>" to the rank's log and the process exits kExitCannotExecute
//      (common/exit_codes.h).
//
// Thread-safety: Prepare is called from the launcher's thread. A confinement
// must outlive every launcher that uses it.
#pragma once

#include <memory>

#include "common/status.h"
#include "worker/launch_spec.h"

namespace sublet::worker {
namespace internal {
struct SeccompProgram;  // worker/internal/rank_sandbox.h
}

// The outcome of one step in the child. It owns nothing: `step` is a string
// literal or a string the parent built before fork.
struct ChildStepStatus {
  const char* step = nullptr;  // what failed, e.g. "setresuid"; nullptr: success
  int error = 0;               // errno of the failure; 0 when there is none to show
  bool ok() const { return step == nullptr; }
};

// One launch's plan, made by Confinement::Prepare and applied in the child.
class PreparedConfinement {
 public:
  virtual ~PreparedConfinement() = default;
  // Runs in the forked child (see step 2 above); must be async-signal-safe.
  virtual ChildStepStatus Apply() noexcept = 0;
};

class Confinement {
 public:
  virtual ~Confinement() = default;
  // Step 1 above. Never returns a null plan on success.
  virtual absl::StatusOr<std::unique_ptr<PreparedConfinement>> Prepare(const LaunchSpec& spec) = 0;
};

// Confines nothing: the rank runs as the worker's user, in its namespaces.
class NoConfinement final : public Confinement {
 public:
  absl::StatusOr<std::unique_ptr<PreparedConfinement>> Prepare(const LaunchSpec& spec) override;
};

// Puts each rank into its job's sandbox (worker/job_sandbox.h, named by
// LaunchSpec::sandbox; a spec without one is refused: FailedPrecondition).
// In the child, Apply():
//   1. joins the sandbox's IPC, mount and PID namespaces;
//   2. forks: the new process, in the job's PID namespace, is the rank. The
//      first process stays outside as its shim: it ignores the signals the
//      worker sends its process group (the rank gets them as a member of the
//      group), waits for the rank and exits with its exit code, or
//      ExitCodeForSignal(N) when the rank was killed by signal N, so the
//      launcher sees what it would without a sandbox;
//   3. in the rank: drops to the sandbox's uid/gid with no supplementary
//      groups, an empty capability bounding set and no_new_privs, takes
//      SIGKILL as its parent-death signal (a killed shim takes its rank
//      along), closes every fd above 2 and loads the seccomp filter
//      (worker/internal/rank_sandbox.h); Apply returns there and the
//      launcher enters the working directory and execs.
class SandboxConfinement final : public Confinement {
 public:
  // Builds the seccomp filter once. Errors: libseccomp failed (Internal).
  static absl::StatusOr<std::unique_ptr<SandboxConfinement>> Create();

  ~SandboxConfinement() override;

  absl::StatusOr<std::unique_ptr<PreparedConfinement>> Prepare(const LaunchSpec& spec) override;

 private:
  explicit SandboxConfinement(std::unique_ptr<internal::SeccompProgram> seccomp);
  std::unique_ptr<internal::SeccompProgram> seccomp_;
};

}  // namespace sublet::worker

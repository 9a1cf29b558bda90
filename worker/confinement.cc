#include "worker/confinement.h"

#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>

#include "common/exit_codes.h"
#include "worker/internal/rank_sandbox.h"
#include "worker/job_sandbox.h"

namespace sublet::worker {
namespace {

class NothingToApply final : public PreparedConfinement {
 public:
  ChildStepStatus Apply() noexcept override { return {}; }
};

ChildStepStatus Errno(const char* step) { return {.step = step, .error = errno}; }

// The shim's whole life after the fork: wait for the rank, exit like it.
// Killed (SIGKILL to the rank's group at a deadline, or by anyone), it takes
// the rank along (the rank's parent-death signal).
[[noreturn]] void RunShim(pid_t rank) {
  struct sigaction ignore {};
  ignore.sa_handler = SIG_IGN;
  sigemptyset(&ignore.sa_mask);
  for (int sig : {SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGPIPE}) {
    sigaction(sig, &ignore, nullptr);
  }
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);
  int status = 0;
  pid_t r;
  while ((r = waitpid(rank, &status, 0)) < 0 && errno == EINTR) {
  }
  if (r < 0) _exit(255);
  if (WIFEXITED(status)) _exit(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) _exit(ExitCodeForSignal(WTERMSIG(status)));
  _exit(255);
}

class EnterSandbox final : public PreparedConfinement {
 public:
  EnterSandbox(SandboxHandle handle, internal::CloseFdsPlan close, internal::PrivilegeDropPlan drop,
               const internal::SeccompProgram& seccomp)
      : handle_(handle), close_(close), drop_(std::move(drop)), seccomp_(seccomp) {}

  ChildStepStatus Apply() noexcept override {
    // "0" moves the writer; the rank, forked below, inherits it.
    for (int fd : handle_.cgroup_fds) {
      if (fd >= 0 && write(fd, "0", 1) != 1) return Errno("join the job's cgroup");
    }
    if (setns(handle_.ipc_fd, CLONE_NEWIPC) != 0) return Errno("join the job's IPC namespace");
    if (setns(handle_.mnt_fd, CLONE_NEWNS) != 0) return Errno("join the job's mount namespace");
    if (setns(handle_.pid_fd, CLONE_NEWPID) != 0) return Errno("join the job's PID namespace");
    // No signal may run a handler between fork and exec in the rank, nor
    // before the shim ignores them.
    sigset_t all;
    sigfillset(&all);
    if (sigprocmask(SIG_SETMASK, &all, nullptr) != 0) return Errno("block signals");
    // The shim holds the write end: EOF on it tells the rank its shim died.
    int alive[2];
    if (pipe2(alive, O_CLOEXEC) != 0) return Errno("create the shim's life pipe");
    const pid_t rank = fork();
    if (rank < 0) return Errno("fork into the job's PID namespace");
    if (rank > 0) {
      close(alive[0]);
      RunShim(rank);
    }
    close(alive[1]);
    sigset_t none;
    sigemptyset(&none);
    if (ChildStepStatus dropped = internal::DropPrivileges(drop_); !dropped.ok()) return dropped;
    // The rank dies with its shim (a changed uid resets this, so it comes
    // after the drop): a shim that was killed must not leave a rank running
    // that the worker already reported as exited.
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) return Errno("set the parent-death signal");
    pollfd life{.fd = alive[0], .events = POLLIN, .revents = 0};
    if (poll(&life, 1, 0) < 0) return Errno("poll the shim's life pipe");
    if ((life.revents & (POLLHUP | POLLIN)) != 0) return {.step = "the rank's shim is gone"};
    if (ChildStepStatus closed = internal::CloseFdsFrom(close_); !closed.ok()) return closed;
    if (sigprocmask(SIG_SETMASK, &none, nullptr) != 0) return Errno("unblock signals");
    return internal::ApplySeccomp(seccomp_);
  }

 private:
  SandboxHandle handle_;
  internal::CloseFdsPlan close_;
  internal::PrivilegeDropPlan drop_;
  const internal::SeccompProgram& seccomp_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<PreparedConfinement>> NoConfinement::Prepare(
    const LaunchSpec& spec) {
  return std::make_unique<NothingToApply>();
}

SandboxConfinement::SandboxConfinement(std::unique_ptr<internal::SeccompProgram> seccomp)
    : seccomp_(std::move(seccomp)) {}

SandboxConfinement::~SandboxConfinement() = default;

absl::StatusOr<std::unique_ptr<SandboxConfinement>> SandboxConfinement::Create() {
  SUBLET_ASSIGN_OR_RETURN(internal::SeccompProgram seccomp, internal::BuildRankSeccompFilter());
  return std::unique_ptr<SandboxConfinement>(new SandboxConfinement(
      std::make_unique<internal::SeccompProgram>(std::move(seccomp))));
}

absl::StatusOr<std::unique_ptr<PreparedConfinement>> SandboxConfinement::Prepare(
    const LaunchSpec& spec) {
  if (spec.sandbox == nullptr) {
    return absl::FailedPreconditionError("a confined rank needs its job's sandbox");
  }
  SUBLET_ASSIGN_OR_RETURN(
      internal::PrivilegeDropPlan drop,
      internal::MakePrivilegeDropPlan({.uid = spec.sandbox->uid, .gid = spec.sandbox->gid}));
  SUBLET_ASSIGN_OR_RETURN(internal::CloseFdsPlan close,
                          internal::MakeCloseFdsPlan(STDERR_FILENO + 1));
  return std::make_unique<EnterSandbox>(*spec.sandbox, close, std::move(drop), *seccomp_);
}

}  // namespace sublet::worker

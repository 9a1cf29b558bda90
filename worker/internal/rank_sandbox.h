// The last things done to a rank's process before exec, when everything
// else (namespaces, stdio, signals) is in place: its descriptors, its
// identity and capabilities, its environment and its syscall filter. A rank
// is hostile tenant code; these steps are what stop it from being root, from
// reaching the worker's descriptors or credentials, and from using the
// kernel interfaces a training job never needs.
//
// As with Confinement (worker/confinement.h), each piece is split along fork:
//   1. Parent side, before fork: Build* / Make* may allocate, read files and
//      fail. They return a plain value holding all the child will need.
//   2. Child side: the apply functions (CloseFdsFrom, DropPrivileges,
//      ApplySeccomp) make raw syscalls on that value and nothing else: no
//      allocation, stdio, locks or exceptions, so they are safe between fork
//      and exec. Each returns a ChildStepStatus naming the step that failed
//      and its errno; the caller ends the child fail-closed.
// The child applies them in this order, right before exec:
//   CloseFdsFrom(3) -> DropPrivileges -> ApplySeccomp -> exec
// (the filter last, so that it need not allow what the earlier steps use).
//
// Thread-safety: the parent-side functions are thread-compatible and share
// no state. A plan or program is read-only once built; one may serve any
// number of launches, and must outlive the fork that uses it (the child works
// on its copy of the parent's memory).
#pragma once

#include <linux/filter.h>
#include <sys/types.h>

#include <string>
#include <vector>

#include "common/status.h"
#include "worker/confinement.h"

namespace sublet::worker::internal {

// ---- Syscall filter --------------------------------------------------------

// A compiled classic-BPF seccomp program for this machine's architecture.
struct SeccompProgram {
  std::vector<sock_filter> instructions;  // never empty when built
};

// The rank filter. Everything is allowed except:
//   - EPERM: tracing and reading other processes (ptrace, process_vm_*),
//     bpf, perf_event_open, the kernel keyring, mounting and namespaces
//     (mount, umount2, pivot_root, chroot, setns, unshare, the new mount
//     API), kernel modules and kexec, file handles (open_by_handle_at,
//     name_to_handle_at), userfaultfd, iopl/ioperm, swap, reboot, syslog,
//     acct, quotactl, lookup_dcookie; and clone() with any CLONE_NEW* flag
//     (personality() stays allowed: see the .cc);
//   - ENOSYS: clone3, whose flags live in memory a filter cannot read; libc
//     then falls back to clone(), whose flags it can (as runc does);
//   - a syscall of another ABI (i386 through int 0x80, x32) kills the
//     process, since its numbers mean other syscalls.
// Built with libseccomp; costs a few milliseconds, so build it once (e.g.
// when the worker starts) and pass it to every launch. An error means
// libseccomp failed, and no rank can be confined.
absl::StatusOr<SeccompProgram> BuildRankSeccompFilter();

// Child side, the last step before exec: sets no_new_privs (the kernel
// requires it, or CAP_SYS_ADMIN, and a rank must never gain privileges
// through exec anyway), then installs `program`. An empty program fails.
ChildStepStatus ApplySeccomp(const SeccompProgram& program) noexcept;

// ---- Identity and capabilities ---------------------------------------------

// Who a rank runs as. `groups` is the whole supplementary group list (may be
// empty): nothing of the worker's own groups is kept.
struct Identity {
  uid_t uid = 0;
  gid_t gid = 0;
  std::vector<gid_t> groups;
};

struct PrivilegeDropPlan {
  Identity identity;
  int cap_last_cap = 0;  // the kernel's highest capability number
};

// Checks `identity` and reads /proc/sys/kernel/cap_last_cap. InvalidArgument
// for uid or gid 0 (or (uid_t)-1, which setresuid reads as "unchanged"), for
// group 0 among the supplementary groups, or for more groups than the kernel
// allows; FailedPrecondition when cap_last_cap cannot be read.
absl::StatusOr<PrivilegeDropPlan> MakePrivilegeDropPlan(const Identity& identity);

// Child side; needs CAP_SETPCAP, CAP_SETGID and CAP_SETUID (the worker runs
// as root). In order: clears the ambient set, drops every capability from
// the bounding set, sets the supplementary groups, then real, effective and
// saved gid and uid, clears whatever capability set remains (the inheritable
// one survives setresuid), checks that uid 0 cannot be taken back (step
// "privileges could be regained" otherwise), and sets no_new_privs. The
// dumpable flag is left as the kernel sets it. Only the calling thread
// changes: the child of fork has no other.
ChildStepStatus DropPrivileges(const PrivilegeDropPlan& plan) noexcept;

// ---- Descriptors -----------------------------------------------------------

struct CloseFdsPlan {
  int first_fd = 3;
  // Where the fallback for kernels without close_range (before 5.9) stops:
  // the hard RLIMIT_NOFILE, above any descriptor the process can hold.
  int fd_limit = 0;
};

// InvalidArgument for a negative `first_fd`; Internal when getrlimit fails.
absl::StatusOr<CloseFdsPlan> MakeCloseFdsPlan(int first_fd);

// Child side: closes every descriptor from plan.first_fd up, with
// close_range, or one by one below plan.fd_limit where that returns ENOSYS.
ChildStepStatus CloseFdsFrom(const CloseFdsPlan& plan) noexcept;

// ---- Environment -----------------------------------------------------------

// Parent side: the entries of `base` (NAME=value, e.g. the worker's environ)
// that a rank may inherit, in their order. See kRankEnvironmentAllowList in
// the .cc; all else, the worker's token included, is dropped.
std::vector<std::string> AllowListedEnvironment(const std::vector<std::string>& base);

}  // namespace sublet::worker::internal

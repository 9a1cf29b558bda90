#include "worker/internal/rank_sandbox.h"

#include <errno.h>
#include <linux/capability.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <seccomp.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <climits>
#include <cstdint>
#include <fstream>
#include <initializer_list>
#include <memory>
#include <string_view>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "worker/internal/unique_fd.h"

#if defined(__s390__) || defined(__s390x__)
#error "clone's flags are its second argument on s390: the clone rules below need arg1"
#endif

namespace sublet::worker::internal {
namespace {

// ---- Parent side: the seccomp filter ---------------------------------------

// Interfaces a training rank never needs that reach outside its own process
// or widen the kernel's attack surface: each answers EPERM.
// clang-format off
constexpr const char* kDeniedSyscalls[] = {
    // other processes' memory
    "ptrace", "process_vm_readv", "process_vm_writev",
    // programmable kernel interfaces and the keyring
    "bpf", "perf_event_open", "userfaultfd", "keyctl", "add_key", "request_key",
    // the filesystem tree and namespaces
    "mount", "umount2", "pivot_root", "chroot", "setns", "unshare", "fsopen", "fsconfig",
    "fsmount", "fspick", "move_mount", "open_tree", "mount_setattr",
    "open_by_handle_at", "name_to_handle_at",
    // the machine itself
    "kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module", "iopl",
    "ioperm", "swapon", "swapoff", "reboot", "syslog", "acct", "quotactl", "lookup_dcookie",
    // io_uring runs its operations in kernel threads, out of this filter's
    // sight (Docker and Android deny it too)
    "io_uring_setup", "io_uring_enter", "io_uring_register",
};
// clang-format on

// clone() with any of these creates a namespace. One rule per flag: a rule
// can test (flags & mask) == value, not (flags & mask) != 0. CLONE_NEWTIME shares its bit
// with the exit signal (which never reaches 0x80) and is clone3/unshare-only.
constexpr uint64_t kNamespaceFlags[] = {
    CLONE_NEWNS,  CLONE_NEWUTS, CLONE_NEWIPC,    CLONE_NEWUSER,
    CLONE_NEWPID, CLONE_NEWNET, CLONE_NEWCGROUP, CLONE_NEWTIME,
};

// personality() stays allowed. Denying all but the query (0xffffffff) and
// PER_LINUX, as Docker does, needs "arg0 != a && arg0 != b", and libseccomp
// compares an argument at most once per rule. What it can set only weakens
// the caller's own process (ASLR, READ_IMPLIES_EXEC), and the flags that
// matter to a setuid program are cleared on a privileged exec, which
// no_new_privs rules out anyway.

struct ReleaseSeccompContext {
  void operator()(void* ctx) const { seccomp_release(ctx); }
};
using SeccompContext = std::unique_ptr<void, ReleaseSeccompContext>;

absl::Status ErrnoStatus(absl::string_view what) {
  return absl::InternalError(absl::StrCat(what, ": ", strerror(errno)));
}

// libseccomp returns -errno.
absl::Status LibseccompStatus(absl::string_view what, int rc) {
  return absl::InternalError(absl::StrCat("libseccomp: ", what, ": ", strerror(-rc)));
}

absl::Status AddRule(scmp_filter_ctx ctx, uint32_t action, const char* syscall_name,
                     std::initializer_list<scmp_arg_cmp> conditions = {}) {
  const int nr = seccomp_syscall_resolve_name(syscall_name);
  if (nr == __NR_SCMP_ERROR) {
    return absl::InternalError(absl::StrCat("libseccomp does not know syscall ", syscall_name));
  }
  const int rc = seccomp_rule_add_array(ctx, action, nr, static_cast<unsigned>(conditions.size()),
                                        conditions.begin());
  return rc < 0 ? LibseccompStatus(absl::StrCat("add a rule for ", syscall_name), rc)
                : absl::OkStatus();
}

absl::Status AddRankRules(scmp_filter_ctx ctx) {
  const uint32_t deny = SCMP_ACT_ERRNO(EPERM);
  for (const char* name : kDeniedSyscalls) SUBLET_RETURN_IF_ERROR(AddRule(ctx, deny, name));
  for (uint64_t flag : kNamespaceFlags) {
    SUBLET_RETURN_IF_ERROR(
        AddRule(ctx, deny, "clone",
                {{.arg = 0, .op = SCMP_CMP_MASKED_EQ, .datum_a = flag, .datum_b = flag}}));
  }
  // Socket families that lead off the node's own network (a VM's vsock
  // reaches the hypervisor's agents) or to kernel subsystems a rank never
  // needs. AF_NETLINK stays: getifaddrs, which NCCL and gloo call, uses it.
  for (uint64_t family : {AF_VSOCK, AF_KEY, AF_BLUETOOTH, AF_ALG}) {
    SUBLET_RETURN_IF_ERROR(
        AddRule(ctx, deny, "socket", {{.arg = 0, .op = SCMP_CMP_EQ, .datum_a = family}}));
  }
  return AddRule(ctx, SCMP_ACT_ERRNO(ENOSYS), "clone3");
}

// libseccomp (2.5) writes BPF only to a descriptor: a memfd, read back.
absl::StatusOr<SeccompProgram> ExportBpf(scmp_filter_ctx ctx) {
  UniqueFd fd(memfd_create("sublet-rank-seccomp", MFD_CLOEXEC));
  if (!fd.valid()) return ErrnoStatus("memfd_create for the seccomp filter");
  if (const int rc = seccomp_export_bpf(ctx, fd.get()); rc < 0) {
    return LibseccompStatus("seccomp_export_bpf", rc);
  }
  struct stat st {};
  if (fstat(fd.get(), &st) != 0) return ErrnoStatus("fstat the exported seccomp filter");
  const size_t size = static_cast<size_t>(st.st_size);
  if (size == 0 || size % sizeof(sock_filter) != 0 || size / sizeof(sock_filter) > BPF_MAXINSNS) {
    return absl::InternalError(absl::StrCat("libseccomp exported ", size, " bytes of BPF"));
  }
  SeccompProgram program;
  program.instructions.resize(size / sizeof(sock_filter));
  char* bytes = reinterpret_cast<char*>(program.instructions.data());
  for (size_t done = 0; done < size;) {
    const ssize_t n = pread(fd.get(), bytes + done, size - done, static_cast<off_t>(done));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return ErrnoStatus("read back the exported seccomp filter");
    done += static_cast<size_t>(n);
  }
  return program;
}

// ---- Parent side: identity and descriptors ---------------------------------

absl::StatusOr<int> ReadCapLastCap() {
  constexpr char kPath[] = "/proc/sys/kernel/cap_last_cap";
  std::ifstream in(kPath);
  std::string text;
  int value = -1;
  if (!std::getline(in, text) || !absl::SimpleAtoi(absl::StripAsciiWhitespace(text), &value) ||
      value < 0 || value > 63) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot read a capability number from ", kPath, ": '", text, "'"));
  }
  return value;
}

absl::Status CheckIdentity(const Identity& identity) {
  constexpr uid_t kUnchangedUid = static_cast<uid_t>(-1);
  constexpr gid_t kUnchangedGid = static_cast<gid_t>(-1);
  if (identity.uid == 0 || identity.uid == kUnchangedUid) {
    return absl::InvalidArgumentError(absl::StrCat("a rank cannot run as uid ", identity.uid));
  }
  if (identity.gid == 0 || identity.gid == kUnchangedGid) {
    return absl::InvalidArgumentError(absl::StrCat("a rank cannot run as gid ", identity.gid));
  }
  for (gid_t group : identity.groups) {
    if (group == 0 || group == kUnchangedGid) {
      return absl::InvalidArgumentError(
          absl::StrCat("a rank cannot have supplementary group ", group));
    }
  }
  const long max_groups = sysconf(_SC_NGROUPS_MAX);
  if (max_groups >= 0 && identity.groups.size() > static_cast<size_t>(max_groups)) {
    return absl::InvalidArgumentError(absl::StrCat(
        identity.groups.size(), " supplementary groups, the kernel allows ", max_groups));
  }
  return absl::OkStatus();
}

// ---- Child side helpers ----------------------------------------------------

ChildStepStatus Failed(const char* step) { return {.step = step, .error = errno}; }

// Empties the effective, permitted and inheritable sets; setresuid clears the
// first two but not the third. Giving capabilities up needs none.
bool ClearCapabilitySets() {
  __user_cap_header_struct header{.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0};
  __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3] = {};
  return syscall(SYS_capset, &header, data) == 0;
}

// ---- Parent side: the environment ------------------------------------------

// What a rank may inherit from the worker's environment: where to find
// programs and libraries (CUDA and MPI installs rely on LD_LIBRARY_PATH),
// and the locale, time zone and terminal, plus every LC_* variable. Nothing
// else: the worker's environment holds its token and coordinator address
// (SUBLET_*) and whatever its service manager put there. A rank's own
// variables come from its job spec, not from here.
constexpr std::string_view kRankEnvironmentAllowList[] = {
    "PATH", "LD_LIBRARY_PATH", "LANG", "LANGUAGE", "TZ", "TERM",
};
constexpr std::string_view kRankEnvironmentAllowedPrefix = "LC_";

bool RankMayInherit(std::string_view name) {
  if (name.starts_with(kRankEnvironmentAllowedPrefix)) {
    return name.size() > kRankEnvironmentAllowedPrefix.size();
  }
  for (std::string_view allowed : kRankEnvironmentAllowList) {
    if (name == allowed) return true;
  }
  return false;
}

}  // namespace

absl::StatusOr<SeccompProgram> BuildRankSeccompFilter() {
  SeccompContext ctx(seccomp_init(SCMP_ACT_ALLOW));
  if (ctx == nullptr) return absl::InternalError("libseccomp: seccomp_init failed");
  // seccomp_init covers the native ABI only; a syscall of any other (i386
  // through int 0x80, x32) takes the bad-architecture action.
  if (const int rc = seccomp_attr_set(ctx.get(), SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS);
      rc < 0) {
    return LibseccompStatus("set the bad-architecture action", rc);
  }
  SUBLET_RETURN_IF_ERROR(AddRankRules(ctx.get()));
  return ExportBpf(ctx.get());
}

ChildStepStatus ApplySeccomp(const SeccompProgram& program) noexcept {
  const size_t length = program.instructions.size();
  if (length == 0) return {.step = "the seccomp filter is empty", .error = EINVAL};
  if (length > BPF_MAXINSNS) return {.step = "the seccomp filter is too long", .error = E2BIG};
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return Failed("set no_new_privs");
  sock_fprog fprog{.len = static_cast<unsigned short>(length),
                   .filter = const_cast<sock_filter*>(program.instructions.data())};
  if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &fprog, 0, 0) != 0) {
    return Failed("install the seccomp filter");
  }
  return {};
}

absl::StatusOr<PrivilegeDropPlan> MakePrivilegeDropPlan(const Identity& identity) {
  SUBLET_RETURN_IF_ERROR(CheckIdentity(identity));
  SUBLET_ASSIGN_OR_RETURN(const int cap_last_cap, ReadCapLastCap());
  return PrivilegeDropPlan{.identity = identity, .cap_last_cap = cap_last_cap};
}

// Raw syscalls rather than libc's setgroups/setresgid/setresuid: those
// broadcast the change to every thread under libc locks, which is neither
// needed nor safe after fork.
ChildStepStatus DropPrivileges(const PrivilegeDropPlan& plan) noexcept {
  const Identity& id = plan.identity;
  if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0) {
    return Failed("clear the ambient capabilities");
  }
  // Needs CAP_SETPCAP, so before setresuid takes it away.
  for (int cap = 0; cap <= plan.cap_last_cap; ++cap) {
    if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0) {
      return Failed("drop the capability bounding set");
    }
  }
  if (syscall(SYS_setgroups, id.groups.size(), id.groups.data()) != 0) return Failed("setgroups");
  if (syscall(SYS_setresgid, id.gid, id.gid, id.gid) != 0) return Failed("setresgid");
  if (syscall(SYS_setresuid, id.uid, id.uid, id.uid) != 0) return Failed("setresuid");
  if (!ClearCapabilitySets()) return Failed("clear the capability sets");
  if (syscall(SYS_setresuid, 0, 0, 0) == 0 || syscall(SYS_setresgid, 0, 0, 0) == 0) {
    return {.step = "privileges could be regained"};
  }
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return Failed("set no_new_privs");
  return {};
}

absl::StatusOr<CloseFdsPlan> MakeCloseFdsPlan(int first_fd) {
  if (first_fd < 0) return absl::InvalidArgumentError(absl::StrCat("bad first fd ", first_fd));
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0) return ErrnoStatus("getrlimit RLIMIT_NOFILE");
  // The hard limit: a descriptor opened before the soft one was lowered is
  // still open above it.
  return CloseFdsPlan{.first_fd = first_fd,
                      .fd_limit = static_cast<int>(std::min<rlim_t>(limit.rlim_max, INT_MAX))};
}

ChildStepStatus CloseFdsFrom(const CloseFdsPlan& plan) noexcept {
  if (plan.first_fd < 0) {
    return {.step = "close descriptors from a negative number", .error = EBADF};
  }
  if (syscall(SYS_close_range, static_cast<unsigned>(plan.first_fd), ~0U, 0U) == 0) return {};
  if (errno != ENOSYS) return Failed("close_range");
  if (plan.fd_limit <= 0) return {.step = "close descriptors: the plan has no fd limit"};
  // Linux releases the descriptor even when close reports an error.
  for (int fd = plan.first_fd; fd < plan.fd_limit; ++fd) (void)close(fd);
  return {};
}

std::vector<std::string> AllowListedEnvironment(const std::vector<std::string>& base) {
  std::vector<std::string> kept;
  for (const std::string& entry : base) {
    const size_t equals = entry.find('=');
    if (equals != std::string::npos && RankMayInherit(std::string_view(entry).substr(0, equals))) {
      kept.push_back(entry);
    }
  }
  return kept;
}

}  // namespace sublet::worker::internal

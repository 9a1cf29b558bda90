// The last steps before a rank's exec (worker/internal/rank_sandbox.h): the
// privilege drop, the syscall filter, descriptor closing and the environment
// allow-list. Child-side steps run in a forked child, which reports back
// through a pipe as "key=value" lines (or copies /proc/self/status, whose
// "Key:\tvalue" lines parse the same) and never touches gtest; the parent
// checks the report and how the child ended. The tests run as root, so the
// uid switches are real.
#include "worker/internal/rank_sandbox.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/keyctl.h>
#include <linux/seccomp.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/personality.h>
#include <sys/ptrace.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include <charconv>
#include <cstddef>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace sublet::worker::internal {
namespace {

using ::testing::ElementsAre;
using ::testing::Ne;
using ::testing::UnorderedElementsAre;

constexpr uid_t kRankUid = 4242;
constexpr gid_t kRankGid = 4343;
const Identity kRank{.uid = kRankUid, .gid = kRankGid, .groups = {4444, 4545}};

// What the child writes: write(2) only, no allocation.
class ChildReport {
 public:
  explicit ChildReport(int fd) : fd_(fd) {}
  void Text(const char* key, const char* value) const {
    Raw(key, strlen(key));
    Raw("=", 1);
    Raw(value, strlen(value));
    Raw("\n", 1);
  }
  void Number(const char* key, long value) const {
    char digits[24] = {};
    std::to_chars(digits, digits + sizeof(digits) - 1, value);
    Text(key, digits);
  }
  // "ok" when the call returned >= 0, else the name of errno ("EPERM").
  void Result(const char* key, long result) const {
    Text(key, result >= 0 ? "ok" : strerrorname_np(errno));
  }
  void Step(const char* key, ChildStepStatus status) const {
    Text(key, status.ok() ? "ok" : status.step);
  }
  void Raw(const char* data, size_t size) const {
    while (size > 0) {
      const ssize_t n = write(fd_, data, size);
      if (n <= 0) return;
      data += n;
      size -= static_cast<size_t>(n);
    }
  }
  int fd() const { return fd_; }
  // Copies /proc/self/status into the report.
  void ProcStatus() const {
    const int fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
    char buffer[4096];
    ssize_t n;
    while (fd >= 0 && (n = read(fd, buffer, sizeof(buffer))) > 0) Raw(buffer, n);
    if (fd >= 0) close(fd);
  }

 private:
  int fd_;
};

struct ChildOutcome {
  std::map<std::string, std::string> report;
  int wait_status = -1;
  bool exited(int code) const { return WIFEXITED(wait_status) && WEXITSTATUS(wait_status) == code; }
  bool killed_by(int signal) const {
    return WIFSIGNALED(wait_status) && WTERMSIG(wait_status) == signal;
  }
};

std::map<std::string, std::string> ParseReport(const std::string& text) {
  std::map<std::string, std::string> report;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    const std::string line = text.substr(start, end - start);
    const size_t separator = line.find_first_of("=:");
    if (separator != std::string::npos) {
      const size_t value = line.find_first_not_of(" \t", separator + 1);
      report[line.substr(0, separator)] = value == std::string::npos ? "" : line.substr(value);
    }
    start = end + 1;
  }
  return report;
}

// Forks; the child runs body(ChildReport&) and exits 0 unless body leaves
// otherwise. Returns the report once the child is gone.
template <typename Body>
ChildOutcome RunInChild(Body body) {
  ChildOutcome outcome;
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) {
    ADD_FAILURE() << "pipe2: " << strerror(errno);
    return outcome;
  }
  const pid_t pid = fork();
  if (pid == 0) {
    close(fds[0]);
    const ChildReport report(fds[1]);
    body(report);
    _exit(0);
  }
  close(fds[1]);
  std::string text;
  char buffer[4096];
  ssize_t n;
  while ((n = read(fds[0], buffer, sizeof(buffer))) != 0) {
    if (n > 0) text.append(buffer, static_cast<size_t>(n));
    if (n < 0 && errno != EINTR) break;
  }
  close(fds[0]);
  if (pid < 0) {
    ADD_FAILURE() << "fork: " << strerror(errno);
    return outcome;
  }
  while (waitpid(pid, &outcome.wait_status, 0) < 0 && errno == EINTR) {
  }
  outcome.report = ParseReport(text);
  return outcome;
}

PrivilegeDropPlan RankPlan() {
  absl::StatusOr<PrivilegeDropPlan> plan = MakePrivilegeDropPlan(kRank);
  EXPECT_TRUE(plan.ok()) << plan.status();
  return plan.value_or(PrivilegeDropPlan{});
}

SeccompProgram RankFilter() {
  absl::StatusOr<SeccompProgram> filter = BuildRankSeccompFilter();
  EXPECT_TRUE(filter.ok()) << filter.status();
  return filter.value_or(SeccompProgram{});
}

// ---- DropPrivileges ----------------------------------------------------------

TEST(DropPrivilegesTest, SwitchesEveryUidGidAndTheSupplementaryGroups) {
  const PrivilegeDropPlan plan = RankPlan();
  ChildOutcome child = RunInChild([&](const ChildReport& out) {
    out.Step("drop", DropPrivileges(plan));
    out.Number("getuid", getuid());
    out.Number("getgid", getgid());
    gid_t groups[8];
    const int count = getgroups(8, groups);
    out.Number("group_count", count);
    for (int i = 0; i < count; ++i) out.Number(i == 0 ? "group0" : "group1", groups[i]);
    out.ProcStatus();  // Uid:/Gid: lines list real, effective, saved and fs ids
  });
  ASSERT_TRUE(child.exited(0)) << child.wait_status;
  EXPECT_EQ(child.report["drop"], "ok");
  EXPECT_EQ(child.report["getuid"], "4242");
  EXPECT_EQ(child.report["getgid"], "4343");
  EXPECT_EQ(child.report["Uid"], "4242\t4242\t4242\t4242");
  EXPECT_EQ(child.report["Gid"], "4343\t4343\t4343\t4343");
  EXPECT_EQ(child.report["group_count"], "2");
  EXPECT_THAT((std::vector{child.report["group0"], child.report["group1"]}),
              UnorderedElementsAre("4444", "4545"));
}

TEST(DropPrivilegesTest, LeavesNoCapabilityAndSetsNoNewPrivs) {
  const PrivilegeDropPlan plan = RankPlan();
  ChildOutcome child = RunInChild([&](const ChildReport& out) {
    out.Step("drop", DropPrivileges(plan));
    out.ProcStatus();
  });
  ASSERT_TRUE(child.exited(0)) << child.wait_status;
  EXPECT_EQ(child.report["drop"], "ok");
  for (const char* set : {"CapBnd", "CapEff", "CapPrm", "CapInh", "CapAmb"}) {
    EXPECT_EQ(child.report[set], "0000000000000000") << set;
  }
  EXPECT_EQ(child.report["NoNewPrivs"], "1");
}

TEST(DropPrivilegesTest, RootCannotBeTakenBack) {
  const PrivilegeDropPlan plan = RankPlan();
  ChildOutcome child = RunInChild([&](const ChildReport& out) {
    out.Step("drop", DropPrivileges(plan));
    out.Result("setuid0", setuid(0));
    out.Result("setgid0", setgid(0));
    out.Number("getuid", getuid());
  });
  ASSERT_TRUE(child.exited(0)) << child.wait_status;
  EXPECT_EQ(child.report["drop"], "ok");
  EXPECT_EQ(child.report["setuid0"], "EPERM");
  EXPECT_EQ(child.report["setgid0"], "EPERM");
  EXPECT_EQ(child.report["getuid"], "4242");
}

TEST(DropPrivilegesTest, ASecondDropFailsAtTheBoundingSetWithItsErrno) {
  const PrivilegeDropPlan plan = RankPlan();
  ChildOutcome child = RunInChild([&](const ChildReport& out) {
    out.Step("first", DropPrivileges(plan));
    const ChildStepStatus second = DropPrivileges(plan);
    out.Step("second", second);
    out.Text("second_error", strerrorname_np(second.error));
  });
  ASSERT_TRUE(child.exited(0)) << child.wait_status;
  EXPECT_EQ(child.report["first"], "ok");
  EXPECT_EQ(child.report["second"], "drop the capability bounding set");
  EXPECT_EQ(child.report["second_error"], "EPERM");
}

TEST(MakePrivilegeDropPlanTest, RefusesRootAndUnchangedIds) {
  for (const Identity& identity :
       {Identity{.uid = 0, .gid = kRankGid}, Identity{.uid = kRankUid, .gid = 0},
        Identity{.uid = static_cast<uid_t>(-1), .gid = kRankGid},
        Identity{.uid = kRankUid, .gid = static_cast<gid_t>(-1)},
        Identity{.uid = kRankUid, .gid = kRankGid, .groups = {27, 0}}}) {
    EXPECT_EQ(MakePrivilegeDropPlan(identity).status().code(), absl::StatusCode::kInvalidArgument)
        << identity.uid << ":" << identity.gid;
  }
}

TEST(MakePrivilegeDropPlanTest, CoversTheKernelsLastCapability) {
  std::ifstream in("/proc/sys/kernel/cap_last_cap");
  int expected = -1;
  in >> expected;
  absl::StatusOr<PrivilegeDropPlan> plan = MakePrivilegeDropPlan(kRank);
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(plan->cap_last_cap, expected);
  EXPECT_THAT(plan->identity.groups, ElementsAre(4444, 4545));
}

// ---- ApplySeccomp --------------------------------------------------------------

// Calls whose answer shows whether the filter stopped them. Their arguments
// are chosen so that, unfiltered, they answer something other than the
// filter's EPERM/ENOSYS (see ProbesAnswerOtherwiseWithoutTheFilter), and so
// that none changes anything outside the child.
void ProbeDeniedCalls(const ChildReport& out) {
  out.Result("unshare", unshare(CLONE_NEWNS));
  out.Result("mount", mount(nullptr, "/nonexistent-sublet-target", "tmpfs", 0, nullptr));
  const long clone = syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0);
  if (clone == 0) _exit(0);
  out.Result("clone_newuser", clone);
  if (clone > 0) waitpid(static_cast<pid_t>(clone), nullptr, 0);
  out.Result("clone3", syscall(SYS_clone3, nullptr, 0));
  char source = 'x', target = 0;
  iovec local{.iov_base = &target, .iov_len = 1}, remote{.iov_base = &source, .iov_len = 1};
  out.Result("process_vm_readv", process_vm_readv(getpid(), &local, 1, &remote, 1, 0));
  out.Result("keyctl", syscall(SYS_keyctl, KEYCTL_GET_KEYRING_ID, KEY_SPEC_PROCESS_KEYRING, 1));
  out.Result("bpf", syscall(SYS_bpf, -1, nullptr, 0));
  // Last: once traced, a signal (a child's SIGCHLD) would stop this process
  // until the test resumed it.
  out.Result("ptrace", ptrace(PTRACE_TRACEME, 0, nullptr, nullptr));
}

TEST(ApplySeccompTest, DeniesTracingNamespacesMountsAndKernelInterfaces) {
  const SeccompProgram filter = RankFilter();
  // Still root with its capabilities: only the filter can say no.
  ChildOutcome child = RunInChild([&](const ChildReport& out) {
    out.Step("seccomp", ApplySeccomp(filter));
    ProbeDeniedCalls(out);
  });
  ASSERT_TRUE(child.exited(0)) << child.wait_status;
  EXPECT_EQ(child.report["seccomp"], "ok");
  for (const char* call :
       {"ptrace", "unshare", "mount", "clone_newuser", "process_vm_readv", "keyctl", "bpf"}) {
    EXPECT_EQ(child.report[call], "EPERM") << call;
  }
  EXPECT_EQ(child.report["clone3"], "ENOSYS");
}

bool AlreadyUnderASeccompFilter() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.starts_with("Seccomp:")) return line.find('0') == std::string::npos;
  }
  return false;
}

TEST(ApplySeccompTest, ProbesAnswerOtherwiseWithoutTheFilter) {
  if (AlreadyUnderASeccompFilter()) GTEST_SKIP() << "this process already has a filter";
  ChildOutcome child = RunInChild([](const ChildReport& out) { ProbeDeniedCalls(out); });
  ASSERT_TRUE(child.exited(0)) << child.wait_status;
  // The answers that do not depend on this machine's privileges or policy.
  EXPECT_EQ(child.report["mount"], "ENOENT");
  EXPECT_EQ(child.report["clone3"], "EINVAL");
  EXPECT_EQ(child.report["process_vm_readv"], "ok");
  EXPECT_THAT(child.report["keyctl"], Ne("EPERM"));
}

void* ReturnArgument(void* argument) { return argument; }

TEST(ApplySeccompTest, LeavesForkThreadsMemoryFilesAndSocketsWorking) {
  const SeccompProgram filter = RankFilter();
  ChildOutcome child = RunInChild([&](const ChildReport& out) {
    out.Step("seccomp", ApplySeccomp(filter));
    const pid_t pid = fork();
    if (pid == 0) _exit(3);
    int status = 0;
    out.Result("fork", pid);
    out.Number("fork_exit", pid > 0 && waitpid(pid, &status, 0) == pid ? WEXITSTATUS(status) : -1);
    pthread_t thread;  // glibc tries clone3 first, then clone
    int marker = 0;
    void* joined = nullptr;
    const int created = pthread_create(&thread, nullptr, ReturnArgument, &marker);
    out.Text("thread", created != 0 ? strerrorname_np(created)
                       : pthread_join(thread, &joined) == 0 && joined == &marker ? "ok"
                                                                                 : "join failed");
    void* memory = mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    out.Result("mmap", memory == MAP_FAILED ? -1 : 0);
    out.Result("socket", socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    const int fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
    char byte;
    out.Result("open", fd);
    out.Result("read", fd >= 0 ? read(fd, &byte, 1) : -1);
    out.Result("personality_query", personality(0xffffffff));
  });
  ASSERT_TRUE(child.exited(0)) << child.wait_status;
  EXPECT_EQ(child.report["seccomp"], "ok");
  EXPECT_EQ(child.report["fork"], "ok");
  EXPECT_EQ(child.report["fork_exit"], "3");
  for (const char* call : {"thread", "mmap", "socket", "open", "read", "personality_query"}) {
    EXPECT_EQ(child.report[call], "ok") << call;
  }
}

void* X32Getpid(void*) {
  constexpr long kX32SyscallBit = 0x40000000;  // __X32_SYSCALL_BIT
  return reinterpret_cast<void*>(syscall(kX32SyscallBit | SYS_getpid));
}

// From a second thread: killing only that thread (libseccomp's default)
// would let the main thread report and exit 0.
TEST(ApplySeccompTest, KillsTheWholeProcessOnAnX32Syscall) {
  const SeccompProgram filter = RankFilter();
  ChildOutcome child = RunInChild([&](const ChildReport& out) {
    out.Step("seccomp", ApplySeccomp(filter));
    pthread_t thread;
    if (pthread_create(&thread, nullptr, X32Getpid, nullptr) != 0) _exit(2);
    pthread_join(thread, nullptr);
    out.Text("survived", "yes");
  });
  EXPECT_EQ(child.report["seccomp"], "ok");
  EXPECT_EQ(child.report["survived"], "");
  EXPECT_TRUE(child.killed_by(SIGSYS)) << "wait status " << child.wait_status;
}

#if defined(__x86_64__)
// getpid through the i386 ABI: int 0x80, syscall 20.
long I386Getpid() {
  long result = 20;
  asm volatile("int $0x80" : "+a"(result) : : "r8", "r9", "r10", "r11", "memory");
  return result;
}

TEST(ApplySeccompTest, KillsTheProcessOnAnI386Syscall) {
  ChildOutcome control = RunInChild([](const ChildReport& out) {
    out.Text("i386_getpid", I386Getpid() == getpid() ? "ok" : "other");
  });
  if (control.report["i386_getpid"] != "ok") GTEST_SKIP() << "this kernel runs no i386 code";
  const SeccompProgram filter = RankFilter();
  ChildOutcome child = RunInChild([&](const ChildReport& out) {
    out.Step("seccomp", ApplySeccomp(filter));
    out.Number("i386_getpid", I386Getpid());
  });
  EXPECT_EQ(child.report["seccomp"], "ok");
  EXPECT_TRUE(child.killed_by(SIGSYS))
      << "wait status " << child.wait_status << ", i386 getpid: " << child.report["i386_getpid"];
}
#endif

TEST(ApplySeccompTest, RefusesAnEmptyProgram) {
  // Returns before any syscall, so it is safe to call here.
  const ChildStepStatus status = ApplySeccomp(SeccompProgram{});
  ASSERT_FALSE(status.ok());
  EXPECT_STREQ(status.step, "the seccomp filter is empty");
  EXPECT_EQ(status.error, EINVAL);
}

// ---- CloseFdsFrom --------------------------------------------------------------

// Answers ENOSYS to close_range, as a kernel before 5.9 would (a test-only
// filter: it checks no architecture).
SeccompProgram CloseRangeIsMissing() {
  return {.instructions = {
              BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, nr)),
              BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_close_range, 0, 1),
              BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ENOSYS),
              BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
          }};
}

// In the child: reports on fd 1 (the report pipe moved there), closes from 3
// (after `before`, which may install a filter), and says whether `fd` is
// still open.
template <typename Before>
ChildOutcome CloseInChild(const CloseFdsPlan& plan, int fd, Before before) {
  return RunInChild([&](const ChildReport& pipe_report) {
    const ChildReport out(STDOUT_FILENO);
    pipe_report.Result("dup2", dup2(pipe_report.fd(), STDOUT_FILENO));
    before(out);
    out.Step("close", CloseFdsFrom(plan));
    out.Result("fd_after", fcntl(fd, F_GETFD));
    out.Result("stderr_after", fcntl(STDERR_FILENO, F_GETFD));
  });
}

class CloseFdsFromTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_GT(open_fd_, STDERR_FILENO) << strerror(errno);
    absl::StatusOr<CloseFdsPlan> plan = MakeCloseFdsPlan(3);
    ASSERT_TRUE(plan.ok()) << plan.status();
    ASSERT_GT(plan->fd_limit, open_fd_);
    plan_ = *plan;
  }
  void TearDown() override { close(open_fd_); }

  int open_fd_ = open("/dev/null", O_RDONLY);  // no O_CLOEXEC: only close may end it
  CloseFdsPlan plan_;
};

TEST_F(CloseFdsFromTest, ClosesEveryDescriptorFromTheFirst) {
  ChildOutcome child = CloseInChild(plan_, open_fd_, [](const ChildReport&) {});
  ASSERT_TRUE(child.exited(0)) << child.wait_status;
  EXPECT_EQ(child.report["dup2"], "ok");
  EXPECT_EQ(child.report["close"], "ok");
  EXPECT_EQ(child.report["fd_after"], "EBADF");
  EXPECT_EQ(child.report["stderr_after"], "ok");
}

TEST_F(CloseFdsFromTest, ClosesOneByOneWhereCloseRangeIsMissing) {
  const SeccompProgram no_close_range = CloseRangeIsMissing();
  ChildOutcome child = CloseInChild(plan_, open_fd_, [&](const ChildReport& out) {
    out.Step("seccomp", ApplySeccomp(no_close_range));
    out.Result("close_range", syscall(SYS_close_range, 1000u, 1000u, 0u));
  });
  ASSERT_TRUE(child.exited(0)) << child.wait_status;
  EXPECT_EQ(child.report["seccomp"], "ok");
  EXPECT_EQ(child.report["close_range"], "ENOSYS");
  EXPECT_EQ(child.report["close"], "ok");
  EXPECT_EQ(child.report["fd_after"], "EBADF");
  EXPECT_EQ(child.report["stderr_after"], "ok");
}

TEST(MakeCloseFdsPlanTest, StopsTheFallbackAtTheHardLimitAndRefusesANegativeFd) {
  rlimit limit{};
  ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &limit), 0);
  absl::StatusOr<CloseFdsPlan> plan = MakeCloseFdsPlan(3);
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(plan->first_fd, 3);
  EXPECT_EQ(static_cast<rlim_t>(plan->fd_limit), limit.rlim_max);
  EXPECT_EQ(MakeCloseFdsPlan(-1).status().code(), absl::StatusCode::kInvalidArgument);
}

// ---- All steps, then exec --------------------------------------------------------

TEST(RankSandboxTest, ARankStillExecsAfterEveryStep) {
  const PrivilegeDropPlan privileges = RankPlan();
  const SeccompProgram filter = RankFilter();
  absl::StatusOr<CloseFdsPlan> descriptors = MakeCloseFdsPlan(3);
  ASSERT_TRUE(descriptors.ok()) << descriptors.status();
  ChildOutcome child = RunInChild([&](const ChildReport&) {
    if (!CloseFdsFrom(*descriptors).ok()) _exit(101);
    if (!DropPrivileges(privileges).ok()) _exit(102);
    if (!ApplySeccomp(filter).ok()) _exit(103);
    execl("/bin/sh", "sh", "-c", "exit 7", nullptr);
    _exit(104);
  });
  EXPECT_TRUE(child.exited(7)) << "wait status " << child.wait_status;
}

// ---- AllowListedEnvironment ------------------------------------------------------

TEST(AllowListedEnvironmentTest, KeepsOnlyTheAllowListAndLocaleVariables) {
  EXPECT_THAT(AllowListedEnvironment({"SUBLET_WORKER_TOKEN=x", "PATH=/usr/bin:/bin", "FOO=y",
                                      "LC_ALL=C.UTF-8", "PATHS=no", "LC_=no", "LANG=C", "TERM",
                                      "LD_PRELOAD=/tmp/evil.so", "TZ=UTC"}),
              ElementsAre("PATH=/usr/bin:/bin", "LC_ALL=C.UTF-8", "LANG=C", "TZ=UTC"));
}

}  // namespace
}  // namespace sublet::worker::internal

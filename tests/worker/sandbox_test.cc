// A rank in its job's sandbox (worker/job_sandbox.h + SandboxConfinement),
// tried as a hostile tenant would: each test runs a real shell or Python
// rank through the real launcher and checks what it could see or do.
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <filesystem>
#include <memory>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/strict_skip.h"
#include "common/exit_codes.h"
#include "fmt/format.h"
#include "tests/worker/test_util.h"
#include "worker/confinement.h"
#include "worker/job_cgroup.h"
#include "worker/job_sandbox.h"
#include "worker/process_launcher.h"

namespace sublet::worker {
namespace {

namespace fs = std::filesystem;
using testing::ReadFile;
using testing::TempDir;
using testing::WaitForExit;
using testing::WriteFile;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr uid_t kUid = 231001;
constexpr gid_t kGid = 231001;

// Python that calls `name(*args)` through libc and prints "<label> ok" or
// "<label> <ERRNO NAME>".
constexpr const char* kPythonCall = R"py(
import ctypes, errno, os, sys
libc = ctypes.CDLL(None, use_errno=True)
def call(label, fn, *args):
    ctypes.set_errno(0)
    r = fn(*args)
    e = ctypes.get_errno()
    print(label, "ok" if r >= 0 else errno.errorcode.get(e, str(e)), flush=True)
)py";

class SandboxTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) SUBLET_SKIP_UNLESS_STRICT() << "sandboxes need root";
    absl::StatusOr<std::unique_ptr<SandboxConfinement>> confinement = SandboxConfinement::Create();
    ASSERT_TRUE(confinement.ok()) << confinement.status();
    confinement_ = *std::move(confinement);
    launcher_ = std::make_unique<PosixProcessLauncher>(
        PosixProcessLauncher::Options{.confinement = confinement_.get()});
    storage_ = dir_ / "storage";
    work_ = dir_ / "work";
    rank_dir_ = work_ + "/jobs/7/attempt-1/work";
    fs::create_directories(rank_dir_);
    ASSERT_EQ(chown(rank_dir_.c_str(), kUid, kGid), 0);
  }

  JobSandboxSpec Spec() const {
    return {.label = "job 7 attempt 1", .uid = kUid, .gid = kGid, .storage_root = storage_,
            .tenant = "acme", .job = "7", .work_root = work_, .rank_dir = rank_dir_};
  }

  std::unique_ptr<JobSandbox> Start(const JobSandboxSpec& spec) {
    absl::StatusOr<std::unique_ptr<JobSandbox>> sandbox = JobSandbox::Start(spec);
    EXPECT_TRUE(sandbox.ok()) << sandbox.status();
    return sandbox.ok() ? *std::move(sandbox) : nullptr;
  }

  LaunchSpec Rank(const JobSandbox& sandbox, std::vector<std::string> argv) const {
    LaunchSpec spec;
    spec.argv = std::move(argv);
    spec.working_dir = rank_dir_;
    spec.log_path = dir_ / "rank.log";
    spec.sandbox = &sandbox.handle();
    return spec;
  }

  int Run(const JobSandbox& sandbox, std::vector<std::string> argv) {
    absl::StatusOr<int> pid = launcher_->Launch(Rank(sandbox, std::move(argv)));
    EXPECT_TRUE(pid.ok()) << pid.status();
    if (!pid.ok()) return -1;
    return WaitForExit(*launcher_, *pid).value_or(-1);
  }
  int Shell(const JobSandbox& sandbox, const std::string& script) {
    return Run(sandbox, {"/bin/sh", "-c", script});
  }
  int Python(const JobSandbox& sandbox, const std::string& code) {
    return Run(sandbox, {"/usr/bin/python3", "-c", std::string(kPythonCall) + code});
  }
  std::string Log() const { return ReadFile(dir_ / "rank.log"); }

  TempDir dir_;
  std::string storage_, work_, rank_dir_;
  std::unique_ptr<SandboxConfinement> confinement_;
  std::unique_ptr<PosixProcessLauncher> launcher_;
};

TEST_F(SandboxTest, TheRankRunsAsTheTenantsUidWithoutCapabilities) {
  std::unique_ptr<JobSandbox> sandbox = Start(Spec());
  ASSERT_NE(sandbox, nullptr);
  EXPECT_EQ(Shell(*sandbox, "id -u; id -g; id -G; grep -E '^(Cap(Inh|Prm|Eff|Bnd|Amb)|NoNewPrivs)' "
                            "/proc/self/status"),
            0)
      << Log();
  const std::string log = Log();
  EXPECT_THAT(log, HasSubstr("231001\n231001\n231001\n"));
  for (const char* cap : {"CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"}) {
    EXPECT_THAT(log, HasSubstr(std::string(cap) + ":\t0000000000000000")) << log;
  }
  EXPECT_THAT(log, HasSubstr("NoNewPrivs:\t1"));
}

TEST_F(SandboxTest, ExitCodesPassThroughTheShim) {
  std::unique_ptr<JobSandbox> sandbox = Start(Spec());
  ASSERT_NE(sandbox, nullptr);
  EXPECT_EQ(Shell(*sandbox, "exit 3"), 3);
  EXPECT_EQ(Shell(*sandbox, "exit 75"), kExitPreempted);
  EXPECT_EQ(Shell(*sandbox, "kill -KILL $$"), ExitCodeForSignal(SIGKILL));
  EXPECT_EQ(Run(*sandbox, {"no-such-command-anywhere"}), kExitCommandNotFound);
}

TEST_F(SandboxTest, TheStorageRootShowsOnlyTheJobsOwnDirectory) {
  fs::create_directories(storage_ + "/globex/3/checkpoints");
  WriteFile(storage_ + "/globex/3/checkpoints/secret", "globex weights");
  fs::create_directories(storage_ + "/acme/5");
  WriteFile(storage_ + "/acme/5/other-job", "acme's other job");
  std::unique_ptr<JobSandbox> sandbox = Start(Spec());
  ASSERT_NE(sandbox, nullptr);
  EXPECT_EQ(Shell(*sandbox, "ls -a " + storage_ + "; ls -a " + storage_ + "/acme; cat " +
                                storage_ + "/globex/3/checkpoints/secret; echo step > " +
                                storage_ + "/acme/7/checkpoints/mine && echo wrote"),
            0)
      << Log();
  const std::string log = Log();
  EXPECT_THAT(log, HasSubstr("No such file or directory"));
  EXPECT_THAT(log, Not(HasSubstr("globex weights")));
  EXPECT_THAT(log, Not(HasSubstr("globex\n")));
  EXPECT_THAT(log, Not(HasSubstr("5\n")));
  EXPECT_THAT(log, HasSubstr("wrote"));
  EXPECT_EQ(ReadFile(storage_ + "/acme/7/checkpoints/mine"), "step\n");
  struct stat st {};
  ASSERT_EQ(stat((storage_ + "/acme/7/checkpoints/mine").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, kUid);
}

TEST_F(SandboxTest, TheWorkDirectoryShowsOnlyTheRanksDirectoryAndTheControlSocket) {
  fs::create_directories(work_ + "/jobs/9/attempt-1");
  WriteFile(work_ + "/jobs/9/attempt-1/rank-0.log", "another job's log");
  WriteFile(work_ + "/token", "worker-secret");
  WriteFile(work_ + "/control.sock", "");
  JobSandboxSpec spec = Spec();
  spec.control_socket = work_ + "/control.sock";
  std::unique_ptr<JobSandbox> sandbox = Start(spec);
  ASSERT_NE(sandbox, nullptr);
  EXPECT_EQ(Shell(*sandbox, "ls " + work_ + "; cat " + work_ + "/token; ls " + work_ +
                                "/jobs/9; [ -e " + work_ + "/control.sock ] && echo socket-there; "
                                "pwd; touch here && echo cwd-writable"),
            0)
      << Log();
  const std::string log = Log();
  // The directories around the ranks' own cannot even be listed.
  EXPECT_THAT(log, HasSubstr("cannot open directory '" + work_ + "': Permission denied"));
  EXPECT_THAT(log, HasSubstr("token: No such file or directory"));
  EXPECT_THAT(log, HasSubstr("jobs/9': No such file or directory"));
  EXPECT_THAT(log, HasSubstr("socket-there"));
  EXPECT_THAT(log, Not(HasSubstr("worker-secret")));
  EXPECT_THAT(log, HasSubstr(rank_dir_ + "\n"));
  EXPECT_THAT(log, HasSubstr("cwd-writable"));
}

TEST_F(SandboxTest, TmpAndShmArePrivateTmpfsAndProcShowsOnlyTheJob) {
  WriteFile("/tmp/sublet-sandbox-test-marker", "host");
  std::unique_ptr<JobSandbox> sandbox = Start(Spec());
  ASSERT_NE(sandbox, nullptr);
  EXPECT_EQ(Shell(*sandbox, "[ -e /tmp/sublet-sandbox-test-marker ] || echo no-marker; "
                            "ls -A /dev/shm | wc -l; stat -f -c %T /tmp "
                            "/dev/shm; ls /proc | grep -c '^[0-9]'; echo x > /dev/shm/s && "
                            "echo shm-writable"),
            0)
      << Log();
  fs::remove("/tmp/sublet-sandbox-test-marker");
  // /tmp holds only the way to this test's directories, /dev/shm nothing,
  // both tmpfs; the processes: the holder, sh, ls's and grep's pipeline.
  EXPECT_THAT(Log(), HasSubstr("no-marker\n0\ntmpfs\ntmpfs\n"));
  const std::string log = Log();
  const size_t at = log.find("tmpfs\ntmpfs\n");
  ASSERT_NE(at, std::string::npos);
  EXPECT_LE(std::stoi(log.substr(at + 12)), 5) << log;
  EXPECT_THAT(log, HasSubstr("shm-writable"));
}

TEST_F(SandboxTest, DevHoldsOnlyTheStandardNodesAndTheGivenGpus) {
  // Stand-ins for /dev/nvidia0 and /dev/nvidia1: character devices with the
  // numbers of /dev/null.
  for (const char* name : {"nvidia0", "nvidia1"}) {
    ASSERT_EQ(mknod((dir_ / name).c_str(), S_IFCHR | 0666, makedev(1, 3)), 0);
  }
  JobSandboxSpec spec = Spec();
  spec.devices = {{dir_ / "nvidia0", "nvidia0"}};
  std::unique_ptr<JobSandbox> sandbox = Start(spec);
  ASSERT_NE(sandbox, nullptr);
  EXPECT_EQ(Python(*sandbox, R"py(
print(sorted(os.listdir("/dev")))
for path in ["/dev/nvidia0", "/dev/nvidia1", "/dev/sda", "/dev/mem", "/dev/kmsg"]:
    try:
        os.close(os.open(path, os.O_RDWR)); print(path, "ok")
    except OSError as e:
        print(path, errno.errorcode[e.errno])
call("mknod", libc.mknod, b"/tmp/mem", 0o20666, os.makedev(1, 1))
)py"),
            0)
      << Log();
  const std::string log = Log();
  EXPECT_THAT(log, HasSubstr("['fd', 'full', 'null', 'nvidia0', 'random', 'shm', 'stderr', "
                             "'stdin', 'stdout', 'tty', 'urandom', 'zero']"));
  EXPECT_THAT(log, HasSubstr("/dev/nvidia0 ok"));
  EXPECT_THAT(log, HasSubstr("/dev/nvidia1 ENOENT"));
  EXPECT_THAT(log, HasSubstr("/dev/sda ENOENT"));
  EXPECT_THAT(log, HasSubstr("/dev/mem ENOENT"));
  EXPECT_THAT(log, HasSubstr("/dev/kmsg ENOENT"));
  EXPECT_THAT(log, HasSubstr("mknod EPERM"));
}

TEST_F(SandboxTest, SyscallsATrainingProcessNeverNeedsAreRefused) {
  std::unique_ptr<JobSandbox> sandbox = Start(Spec());
  ASSERT_NE(sandbox, nullptr);
  EXPECT_EQ(Python(*sandbox, R"py(
sc = libc.syscall
call("ptrace", libc.ptrace, 0, 0, 0, 0)
call("process_vm_readv", sc, 310, os.getpid(), 0, 0, 0, 0, 0)
call("bpf", sc, 321, 0, 0, 0)
call("perf_event_open", sc, 298, 0, 0, -1, -1, 0)
call("keyctl", sc, 250, 0, 0, 0, 0, 0)
call("unshare", libc.unshare, 0x20000)
call("unshare_user", libc.unshare, 0x10000000)
call("setns", libc.setns, 0, 0)
call("mount", libc.mount, b"none", b"/tmp", b"tmpfs", 0, None)
call("clone_newuser", sc, 56, 0x10000000 | 17, 0, 0, 0, 0)
call("clone3", sc, 435, 0, 0)
call("setuid0", libc.setuid, 0)
pid = os.fork()
if pid == 0:
    os._exit(7)
print("fork", os.waitpid(pid, 0)[1] >> 8, flush=True)
)py"),
            0)
      << Log();
  const std::string log = Log();
  for (const char* refused : {"ptrace EPERM", "process_vm_readv EPERM", "bpf EPERM",
                              "perf_event_open EPERM", "keyctl EPERM", "unshare EPERM",
                              "unshare_user EPERM", "setns EPERM", "mount EPERM",
                              "clone_newuser EPERM", "clone3 ENOSYS", "setuid0 EPERM"}) {
    EXPECT_THAT(log, HasSubstr(refused)) << log;
  }
  EXPECT_THAT(log, HasSubstr("fork 7"));
}

TEST_F(SandboxTest, TheHostIsReadOnlyAndOtherJobsCgroupsAreHidden) {
  std::unique_ptr<JobSandbox> sandbox = Start(Spec());
  ASSERT_NE(sandbox, nullptr);
  EXPECT_EQ(Python(*sandbox, R"py(
for path in ["/var/tmp/sublet-sandbox-left-behind", "/run/lock/x"]:
    try:
        open(path, "w"); print(path, "ok")
    except OSError as e:
        print(path, errno.errorcode[e.errno])
try:
    print("cgroups", os.listdir("/sys/fs/cgroup"))
except OSError as e:
    print("cgroups", errno.errorcode[e.errno])
print("memory cgroup", os.path.exists("/sys/fs/cgroup/memory"))
open("mine", "w").write("x"); print("rank dir writable")
call("vsock", libc.socket, 40, 1, 0)
)py"),
            0)
      << Log();
  EXPECT_THAT(Log(), HasSubstr("/var/tmp/sublet-sandbox-left-behind EROFS"));
  EXPECT_THAT(Log(), HasSubstr("cgroups EACCES"));
  EXPECT_THAT(Log(), HasSubstr("memory cgroup False"));
  EXPECT_THAT(Log(), HasSubstr("rank dir writable"));
  EXPECT_THAT(Log(), HasSubstr("vsock EPERM"));
  EXPECT_FALSE(fs::exists("/var/tmp/sublet-sandbox-left-behind"));
}

TEST_F(SandboxTest, NoDescriptorOfTheWorkerReachesTheRank) {
  // A descriptor the worker leaked without O_CLOEXEC.
  const int leaked = open("/etc/hostname", O_RDONLY);
  ASSERT_GE(leaked, 0);
  std::unique_ptr<JobSandbox> sandbox = Start(Spec());
  ASSERT_NE(sandbox, nullptr);
  EXPECT_EQ(Python(*sandbox, "print('fds', sorted(int(f) for f in os.listdir('/proc/self/fd')))"),
            0)
      << Log();
  close(leaked);
  // 0-2, and the one listdir holds open.
  EXPECT_THAT(Log(), HasSubstr("fds [0, 1, 2, 3]"));
}

// The pid namespace of `pid`, as its /proc link reads ("pid:[inode]").
std::string PidNamespace(int pid) {
  std::error_code error;
  return fs::read_symlink(fmt::format("/proc/{}/ns/pid", pid), error).string();
}

// Processes on the host that live in the pid namespace `ns`, but `except`.
int ProcessesIn(const std::string& ns, int except = 0) {
  int inside = 0;
  for (const auto& entry : fs::directory_iterator("/proc")) {
    const std::string name = entry.path().filename().string();
    if (name.find_first_not_of("0123456789") == std::string::npos &&
        std::stoi(name) != except && PidNamespace(std::stoi(name)) == ns) {
      ++inside;
    }
  }
  return inside;
}

// Processes of the sandbox other than its holder.
int ProcessesInside(const JobSandbox& sandbox) {
  return ProcessesIn(PidNamespace(sandbox.holder_pid()), sandbox.holder_pid());
}

TEST_F(SandboxTest, ADaemonARankLeavesInANewSessionDiesWithTheSandbox) {
  std::unique_ptr<JobSandbox> sandbox = Start(Spec());
  ASSERT_NE(sandbox, nullptr);
  const std::string ns = PidNamespace(sandbox->holder_pid());
  ASSERT_FALSE(ns.empty());
  // The rank waits until the daemon runs in its new session: the launcher
  // kills what is left of a rank's process group when the rank exits.
  EXPECT_EQ(Shell(*sandbox, "setsid sh -c 'touch started; exec sleep 1000' </dev/null >/dev/null "
                            "2>&1 & while [ ! -e started ]; do sleep 0.01; done; echo left"),
            0);
  // The rank exited; what it started in a new session still runs.
  EXPECT_GE(ProcessesInside(*sandbox), 1);
  sandbox->Destroy();
  EXPECT_EQ(ProcessesIn(ns), 0);
}

TEST_F(SandboxTest, ARankDiesWithItsShim) {
  std::unique_ptr<JobSandbox> sandbox = Start(Spec());
  ASSERT_NE(sandbox, nullptr);
  absl::StatusOr<int> pid =
      launcher_->Launch(Rank(*sandbox, {"/bin/sh", "-c", "touch up; exec sleep 1000"}));
  ASSERT_TRUE(pid.ok()) << pid.status();
  for (int i = 0; i < 400 && !fs::exists(rank_dir_ + "/up"); ++i) usleep(50'000);
  ASSERT_EQ(ProcessesInside(*sandbox), 1);
  // Only the shim: the rank is in another process group's reach no more.
  ASSERT_EQ(kill(*pid, SIGKILL), 0);
  EXPECT_EQ(WaitForExit(*launcher_, *pid), ExitCodeForSignal(SIGKILL));
  // SIGKILL from the kernel is on its way to the rank; it must arrive.
  for (int i = 0; i < 400 && ProcessesInside(*sandbox) > 0; ++i) usleep(10'000);
  EXPECT_EQ(ProcessesInside(*sandbox), 0);
}

TEST_F(SandboxTest, SignalAllReachesProcessesInOtherSessions) {
  std::unique_ptr<JobSandbox> sandbox = Start(Spec());
  ASSERT_NE(sandbox, nullptr);
  // The rank starts a helper in its own session that records a SIGUSR1 and
  // exits; the rank waits for the record to appear, so it ends once the
  // relay reached the helper.
  absl::StatusOr<int> pid = launcher_->Launch(Rank(
      *sandbox, {"/bin/sh", "-c",
                 "setsid sh -c 'trap \"echo got > got; exit 0\" USR1; touch ready; "
                 "while :; do sleep 0.05; done' & "
                 "trap '' USR1; while [ ! -e got ]; do sleep 0.05; done; cat got"}));
  ASSERT_TRUE(pid.ok()) << pid.status();
  for (int i = 0; i < 400 && !fs::exists(rank_dir_ + "/ready"); ++i) usleep(50'000);
  ASSERT_TRUE(fs::exists(rank_dir_ + "/ready"));
  ASSERT_TRUE(sandbox->SignalAll(SIGUSR1).ok());
  EXPECT_EQ(WaitForExit(*launcher_, *pid), 0) << Log();
  EXPECT_THAT(Log(), HasSubstr("got"));
  EXPECT_TRUE(absl::IsInvalidArgument(sandbox->SignalAll(SIGKILL)));
}

TEST_F(SandboxTest, TheJobsCgroupLimitsItsProcessesAndMemory) {
  if (!JobCgroup::Probe().ok()) SUBLET_SKIP_UNLESS_STRICT() << JobCgroup::Probe();
  absl::StatusOr<std::unique_ptr<JobCgroup>> cgroup = JobCgroup::Create(
      fmt::format("sandbox-test-{}", getpid()), {.memory_bytes = 64 << 20, .pids = 12});
  ASSERT_TRUE(cgroup.ok()) << cgroup.status();
  JobSandboxSpec spec = Spec();
  spec.cgroup_procs_fds = (*cgroup)->procs_fds();
  std::unique_ptr<JobSandbox> sandbox = Start(spec);
  ASSERT_NE(sandbox, nullptr);
  const std::string name = fmt::format("sublet/sandbox-test-{}", getpid());
  EXPECT_EQ(Python(*sandbox, R"py(
print("in_cgroup", ")py" + name + R"py(" in open("/proc/self/cgroup").read(), flush=True)
children, refused = [], 0
for i in range(40):
    try:
        pid = os.fork()
    except OSError as e:
        refused += 1
        continue
    if pid == 0:
        import time; time.sleep(5); os._exit(0)
    children.append(pid)
print("forks", len(children), "refused", refused, flush=True)
for pid in children:
    os.kill(pid, 9); os.waitpid(pid, 0)
)py"),
            0)
      << Log();
  EXPECT_THAT(Log(), HasSubstr("in_cgroup True"));
  // 12 = the holder, the shim, python and 9 children; the other 31 forks fail.
  EXPECT_THAT(Log(), HasSubstr("forks 9 refused 31"));
  // Past the memory limit the kernel kills the rank.
  EXPECT_EQ(Python(*sandbox, "b = bytearray(256 << 20); b[::4096] = b'x' * len(b[::4096])"),
            ExitCodeForSignal(SIGKILL));
  sandbox->Destroy();
}

TEST_F(SandboxTest, LeftoverCgroupsOfOneNodeAreRemovedAndOtherNodesKeepTheirs) {
  if (!JobCgroup::Probe().ok()) SUBLET_SKIP_UNLESS_STRICT() << JobCgroup::Probe();
  const std::string ours = fmt::format("test-node-{}.", getpid());
  const std::string theirs = fmt::format("other-node-{}.", getpid());
  // What a killed worker leaves behind: cgroups it never removed.
  absl::StatusOr<std::unique_ptr<JobCgroup>> kept = JobCgroup::Create(theirs + "job-1", {});
  ASSERT_TRUE(kept.ok()) << kept.status();
  std::vector<std::string> left;
  {
    absl::StatusOr<std::unique_ptr<JobCgroup>> leftover = JobCgroup::Create(ours + "job-1", {});
    ASSERT_TRUE(leftover.ok()) << leftover.status();
    left = (*leftover)->dirs();
    for (const std::string& dir : left) ASSERT_EQ(mkdir((dir + "-copy").c_str(), 0755), 0);
  }
  for (const std::string& dir : left) ASSERT_TRUE(fs::exists(dir + "-copy"));
  EXPECT_EQ(JobCgroup::RemoveLeftovers(ours), static_cast<int>(left.size()));
  for (const std::string& dir : left) EXPECT_FALSE(fs::exists(dir + "-copy"));
  for (const std::string& dir : (*kept)->dirs()) EXPECT_TRUE(fs::exists(dir));
}

TEST_F(SandboxTest, AJobDirectorySwappedForASymlinkIsRefused) {
  fs::create_directories(storage_ + "/globex/3");
  fs::create_directories(storage_ + "/acme");
  ASSERT_EQ(chown((storage_ + "/acme").c_str(), kUid, kGid), 0);
  fs::create_directory_symlink(storage_ + "/globex/3", storage_ + "/acme/7");
  absl::StatusOr<std::unique_ptr<JobSandbox>> sandbox = JobSandbox::Start(Spec());
  ASSERT_FALSE(sandbox.ok());
  EXPECT_TRUE(absl::IsFailedPrecondition(sandbox.status())) << sandbox.status();
  EXPECT_THAT(sandbox.status().message(), HasSubstr("acme/7 is not a directory"));
  // Nothing of globex's was handed to acme.
  struct stat st {};
  ASSERT_EQ(stat((storage_ + "/globex/3").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, 0u);
}

TEST_F(SandboxTest, StorageMakesTheTenantsDirectoryTheirsAloneAndTheRootUnlistable) {
  absl::StatusOr<internal::UniqueFd> job = PrepareJobStorage(storage_, "acme", "7", kUid, kGid);
  ASSERT_TRUE(job.ok()) << job.status();
  struct stat st {};
  ASSERT_EQ(stat(storage_.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0711u);
  ASSERT_EQ(stat((storage_ + "/acme").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0700u);
  EXPECT_EQ(st.st_uid, kUid);
  ASSERT_EQ(stat((storage_ + "/acme/7/checkpoints").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, kUid);
}

TEST_F(SandboxTest, ADirectoryOwnedByAnotherTenantIsRefused) {
  fs::create_directories(storage_ + "/acme");
  ASSERT_EQ(chown((storage_ + "/acme").c_str(), kUid + 1, kGid + 1), 0);
  absl::StatusOr<internal::UniqueFd> job = PrepareJobStorage(storage_, "acme", "7", kUid, kGid);
  ASSERT_FALSE(job.ok());
  EXPECT_TRUE(absl::IsFailedPrecondition(job.status()));
  EXPECT_THAT(job.status().message(), HasSubstr("belongs to uid 231002"));
}

TEST_F(SandboxTest, BadNamesAndUidZeroAreRefused) {
  EXPECT_TRUE(absl::IsInvalidArgument(PrepareJobStorage(storage_, "..", "7", kUid, kGid).status()));
  EXPECT_TRUE(absl::IsInvalidArgument(PrepareJobStorage(storage_, "a/b", "7", kUid, kGid).status()));
  EXPECT_TRUE(absl::IsInvalidArgument(PrepareJobStorage(storage_, "acme", "7", 0, 0).status()));
  EXPECT_TRUE(absl::IsInvalidArgument(PrepareJobStorage("relative", "acme", "7", kUid, kGid).status()));
  EXPECT_TRUE(absl::IsFailedPrecondition(
      launcher_->Launch(testing::ShellSpec(dir_, "true")).status()));
}

}  // namespace
}  // namespace sublet::worker

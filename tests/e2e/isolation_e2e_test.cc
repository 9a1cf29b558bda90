// Tenant isolation end to end: real daemons, two tenants, and ranks that
// attack as a hostile tenant would. Each attack is refused, and the test
// names the errno it must get.
#include <signal.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "protocols/curve.h"
#include "tests/e2e/test_cluster.h"

namespace sublet::e2e {
namespace {

using json = nlohmann::json;
using ::testing::HasSubstr;
using ::testing::Not;

// Prints "<what> <ERRNO NAME>" or "<what> ok" for each attempt.
constexpr const char* kAttack = R"py(
import ctypes, errno, os, signal, sys
libc = ctypes.CDLL(None, use_errno=True)
storage, cluster, globex_job = sys.argv[1], sys.argv[2], sys.argv[3]
def attempt(what, fn):
    try:
        fn()
        print(what, "ok", flush=True)
    except OSError as e:
        print(what, errno.errorcode[e.errno], flush=True)
def call(what, fn, *args):
    ctypes.set_errno(0)
    r = fn(*args)
    print(what, "ok" if r >= 0 else errno.errorcode[ctypes.get_errno()], flush=True)
print("uid", os.getuid(), "gid", os.getgid(), "groups", os.getgroups(), flush=True)
attempt("read_other_tenant", lambda: open(f"{storage}/globex/{globex_job}/checkpoints/w").read())
attempt("list_storage_root", lambda: os.listdir(storage))
attempt("read_coordinator_config", lambda: open(f"{cluster}/coordinator.yaml").read())
attempt("read_worker_token", lambda: open(f"{cluster}/node-token").read())
attempt("read_worker_state", lambda: os.listdir(f"{cluster}/node-0"))
attempt("signal_holder", lambda: os.kill(1, signal.SIGKILL))
attempt("write_etc", lambda: open("/etc/sublet-owned", "w"))
attempt("read_shadow", lambda: open("/etc/shadow").read())
call("ptrace", libc.ptrace, 0, 0, 0, 0)
call("mount", libc.mount, b"none", b"/tmp", b"tmpfs", 0, None)
call("unshare", libc.unshare, 0x10000000)
daemons = []
for pid in os.listdir("/proc"):
    if pid.isdigit():
        try:
            daemons.append(open(f"/proc/{pid}/cmdline", "rb").read())
        except OSError:
            pass
print("sees_daemons", any(b"sublet-worker" in c or b"sublet-coordinator" in c for c in daemons))
print("env_has_token", any("node-token" in v for v in os.environ.values()))
print("own_storage", os.access(os.environ["SUBLET_CHECKPOINT_DIR"], os.W_OK))
)py";

TEST(IsolationE2eTest, ARankCannotReachAnotherTenantTheServicesSecretsOrTheNode) {
  TestCluster cluster({.workers = 1, .gpus = 2});
  // globex leaves weights in its checkpoint directory.
  std::string globex = cluster.Submit(
      cluster.WriteSpec("globex", "name: weights\nresources: {nodes: 1, gpus_per_node: 1}\n"
                                  "command: [sh, -c, 'echo globex-weights > "
                                  "$SUBLET_CHECKPOINT_DIR/w']\n"),
      "globex-token");
  cluster.WaitForJob(
      globex, [](const json& j) { return j["state"] == "succeeded"; }, "globex-token");
  ASSERT_TRUE(std::filesystem::exists(cluster.dir() + "/storage/globex/" + globex +
                                      "/checkpoints/w"));
  std::ofstream(cluster.shared_dir() + "/attack.py") << kAttack;
  std::string acme = cluster.Submit(cluster.WriteSpec(
      "attack", "name: attack\nresources: {nodes: 1, gpus_per_node: 1}\ncommand: [python3, " +
                    cluster.shared_dir() + "/attack.py, " + cluster.dir() + "/storage, " +
                    cluster.dir() + ", '" + globex + "']\n"));
  cluster.WaitForState(acme, "succeeded");
  CommandResult logs = cluster.Sublet({"logs", acme});
  ASSERT_EQ(logs.exit_code, 0) << logs.err;
  const std::string& out = logs.out;
  // Tenants are numbered in name order: acme 1, globex 2.
  EXPECT_THAT(out, HasSubstr("uid 200001 gid 200001 groups []"));
  EXPECT_THAT(out, HasSubstr("read_other_tenant ENOENT"));
  EXPECT_THAT(out, HasSubstr("list_storage_root EACCES"));
  EXPECT_THAT(out, HasSubstr("read_coordinator_config ENOENT"));
  EXPECT_THAT(out, HasSubstr("read_worker_token ENOENT"));
  EXPECT_THAT(out, HasSubstr("read_worker_state EACCES"));
  EXPECT_THAT(out, HasSubstr("signal_holder EPERM"));
  EXPECT_THAT(out, HasSubstr("write_etc EROFS"));  // the host is read-only in the sandbox
  EXPECT_THAT(out, HasSubstr("read_shadow EACCES"));
  EXPECT_THAT(out, HasSubstr("ptrace EPERM"));
  EXPECT_THAT(out, HasSubstr("mount EPERM"));
  EXPECT_THAT(out, HasSubstr("unshare EPERM"));
  EXPECT_THAT(out, HasSubstr("sees_daemons False"));
  EXPECT_THAT(out, HasSubstr("env_has_token False"));
  EXPECT_THAT(out, HasSubstr("own_storage True"));
  EXPECT_THAT(out, Not(HasSubstr("globex-weights")));

  const json nodes = cluster.Json({"nodes"}, "admin-token");
  ASSERT_EQ(nodes["nodes"].size(), 1u);
  EXPECT_EQ(nodes["nodes"][0]["isolation"], "sandbox");
}

TEST(IsolationE2eTest, AWorkerThatCannotConfineRefusesToStartUnlessToldAndNodesShowIt) {
  // Not root: no namespaces, no uid switch. setpriv (util-linux) drops to nobody.
  const std::string dir = ::testing::TempDir() + "/sublet-isolation-" + std::to_string(getpid());
  std::filesystem::create_directories(dir);
  std::filesystem::permissions(dir, std::filesystem::perms::all);
  CommandResult refused =
      e2e::Run({"/usr/bin/setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups",
           Bin("sublet-worker"), "--coordinator", "tcp://127.0.0.1:1", "--name", "n", "--gpus",
           "1", "--work-dir", dir + "/work"},
          {{"SUBLET_WORKER_TOKEN", "node-token"},
           {"SUBLET_COORDINATOR_KEY", protocols::NewCurveKeyPair().public_key}},
          dir);
  EXPECT_EQ(refused.exit_code, 3) << refused.err;
  EXPECT_THAT(refused.err, HasSubstr("cannot confine ranks on this node: not running as root"));
  EXPECT_THAT(refused.err, HasSubstr("--no-isolation"));
  // A token file others can read is refused, naming the fix.
  std::ofstream(dir + "/token") << "node-token\n";
  std::filesystem::permissions(dir + "/token", std::filesystem::perms::owner_read |
                                                   std::filesystem::perms::others_read);
  CommandResult open_token = e2e::Run({Bin("sublet-worker"), "--coordinator", "tcp://127.0.0.1:1",
                                  "--name", "n", "--gpus", "1", "--work-dir", dir + "/work",
                                  "--token-file", dir + "/token"},
                                 {{"SUBLET_COORDINATOR_KEY", protocols::NewCurveKeyPair().public_key}},
                                 dir);
  EXPECT_EQ(open_token.exit_code, 2);
  EXPECT_THAT(open_token.err, HasSubstr("readable by group or others (chmod 600 it)"));
  std::filesystem::remove_all(dir);

  TestCluster cluster({.workers = 2, .gpus = 1, .worker_args = {{1, {"--no-isolation"}}}});
  const json nodes = cluster.Json({"nodes"}, "admin-token");
  ASSERT_EQ(nodes["nodes"].size(), 2u);
  EXPECT_EQ(nodes["nodes"][0]["isolation"], "sandbox");
  EXPECT_EQ(nodes["nodes"][1]["isolation"], "none");
  CommandResult table = cluster.Sublet({"nodes"}, "admin-token");
  EXPECT_THAT(table.out, HasSubstr("ISOLATION"));
  EXPECT_THAT(table.out, HasSubstr("none"));
}

// True while any process's command line holds `marker`.
bool AnyProcessWith(const std::string& marker) {
  for (const auto& entry : std::filesystem::directory_iterator("/proc")) {
    std::ifstream in(entry.path() / "cmdline", std::ios::binary);
    std::stringstream text;
    text << in.rdbuf();
    if (text.str().find(marker) != std::string::npos) return true;
  }
  return false;
}

// A launcher whose children leave its session (torchrun's workers, a
// daemonising tool): when the attempt ends they are gone, before the next
// attempt starts and before the job is reported over.
TEST(IsolationE2eTest, ProcessesARankStartsInANewSessionNeverOutliveItsAttempt) {
  TestCluster cluster({.workers = 1, .gpus = 1});
  const std::string beats = cluster.shared_dir() + "/beats";
  const std::string marker = "sublet-isolation-e2e-daemon";
  // Attempt 1 starts a daemon in a new session and fails; attempt 2 notes its
  // start, starts one too and succeeds.
  const std::string script =
      "echo start $SUBLET_ATTEMPT >> " + beats + "; setsid sh -c \"while :; do echo beat "
      "$SUBLET_ATTEMPT >> " + beats + "; sleep 0.02; done; : " + marker + "\" </dev/null "
      ">/dev/null 2>&1 & while ! grep -q \"beat $SUBLET_ATTEMPT\" " + beats +
      "; do sleep 0.01; done; [ $SUBLET_ATTEMPT -gt 1 ]";
  std::string id = cluster.Submit(cluster.WriteSpec(
      "daemon", "name: daemon\nresources: {nodes: 1, gpus_per_node: 1}\ncommand: [sh, -c, '" +
                    script + "']\nmax_restarts: 1\n"));
  json job = cluster.WaitForState(id, "succeeded");
  EXPECT_EQ(job["restarts"], 1);
  // The worker destroyed the sandbox before it reported the exit.
  EXPECT_FALSE(AnyProcessWith(marker));
  std::ifstream in(beats);
  std::string line;
  bool second_started = false;
  int beats_of_first = 0;
  while (std::getline(in, line)) {
    if (line == "start 2") second_started = true;
    if (line == "beat 1") {
      ++beats_of_first;
      EXPECT_FALSE(second_started) << "attempt 1's daemon ran on into attempt 2";
    }
  }
  EXPECT_TRUE(second_started);
  EXPECT_GE(beats_of_first, 1);
}

}  // namespace
}  // namespace sublet::e2e

// sublet-worker: parses flags, finds the GPUs, makes sure it can confine
// ranks, and runs one Worker until SIGTERM or SIGINT. Exit codes: 0 after a
// clean stop, 2 for bad flags or no GPUs, 3 when ranks cannot be confined
// (and --no-isolation was not given), 1 for anything else.
#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <optional>
#include <sstream>
#include <string>

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <zmq.hpp>

#include "common/clock.h"
#include "common/duration.h"
#include "common/log.h"
#include "worker/confinement.h"
#include "worker/inventory.h"
#include "worker/job_cgroup.h"
#include "worker/job_sandbox.h"
#include "worker/process_launcher.h"
#include "protocols/curve.h"
#include "worker/worker.h"

namespace {

// Set by the SIGTERM/SIGINT handler, read by the event loop (a lock-free
// atomic store is async-signal-safe). The one global: signals need it.
std::atomic<bool> g_stop{false};

void OnStopSignal(int) { g_stop.store(true); }

void InstallSignalHandlers() {
  struct sigaction action {};
  action.sa_handler = OnStopSignal;
  sigemptyset(&action.sa_mask);
  action.sa_flags = SA_RESTART;
  sigaction(SIGTERM, &action, nullptr);
  sigaction(SIGINT, &action, nullptr);
  signal(SIGPIPE, SIG_IGN);
}

struct Flags {
  sublet::worker::Worker::Options options;
  std::optional<uint32_t> gpus;
  std::string heartbeat = "1s";
  std::string log_level = "info";
  std::string token_file;
  std::string coordinator_key;
  std::string key_file;
  bool show_public_key = false;
  bool no_isolation = false;
  std::string uids = "200000-299999";
  uint64_t memory_mib_per_gpu = 0;
};

void DefineFlags(CLI::App& app, Flags& flags) {
  auto& o = flags.options;
  app.add_option("--coordinator", o.coordinator,
                 "ZeroMQ endpoint of the coordinator, e.g. tcp://10.0.0.1:7700 (required)");
  app.add_option("--coordinator-key", flags.coordinator_key,
                 "the coordinator's CURVE public key to pin (env SUBLET_COORDINATOR_KEY; "
                 "`sublet-coordinator --show-public-key` prints it) (required)");
  app.add_option("--key-file", flags.key_file,
                 "this node's CURVE secret key, made (mode 600) if missing; its public key "
                 "must be listed under workers.keys in the coordinator's config (default: "
                 "<work-dir>/node.key)");
  app.add_flag("--show-public-key", flags.show_public_key,
               "print this node's public key (making the key file if missing) and exit");
  app.add_option("--name", o.node, "this node's name, unique in the cluster (required)");
  app.add_option("--gpus", flags.gpus,
                 "emulate this many GPUs (model \"emulated\"); without it the GPUs come "
                 "from the NVIDIA driver")
      ->check(CLI::Range(0, 1024));
  app.add_option("--work-dir", o.work_dir,
                 "directory for rank working directories, logs, pid files, the control "
                 "socket and the node key (created if missing) (required)");
  app.add_option("--token-file", flags.token_file,
                 "file holding the worker-pool token, when the coordinator's config sets "
                 "workers.token (it must not be readable by group or others); without it the "
                 "token comes from SUBLET_WORKER_TOKEN, which the worker removes from its "
                 "environment");
  app.add_option("--token", o.token,
                 "the worker-pool token (deprecated: any process on the node can read a "
                 "command line; use --token-file)");
  app.add_flag("--no-isolation", flags.no_isolation,
               "run ranks unconfined, as this worker's user and seeing the whole node "
               "(sublet nodes shows it); for development only");
  app.add_option("--uids", flags.uids,
                 "FIRST-LAST: the uids ranks run as; tenant N (numbered by the coordinator) "
                 "runs as FIRST+N")
      ->capture_default_str();
  app.add_option("--hide", o.isolation.hidden,
                 "a host directory ranks must not see (repeatable); the work dir and the "
                 "storage root are always hidden but for the job's own parts");
  app.add_option("--share", o.isolation.shared,
                 "a host directory every job sees at the same path, as its permissions allow, "
                 "e.g. a dataset (repeatable); never inside the work dir or the storage root");
  app.add_option("--job-memory-mib-per-gpu", flags.memory_mib_per_gpu,
                 "memory limit of a job on this node per GPU it has here, MiB (default: the "
                 "node's memory divided by its GPUs); applied through the job's cgroup");
  app.add_option("--job-pids", o.isolation.job_pids,
                 "most processes and threads a job may have on this node (0: no limit)")
      ->capture_default_str();
  app.add_option("--device-dir", o.isolation.device_dir,
                 "where the GPU device nodes (nvidia<N>, nvidiactl, nvidia-uvm) are")
      ->capture_default_str();
  app.add_option("--address", o.address,
                 "host or IP where ranks on other nodes reach this node; free ports are "
                 "probed on it")
      ->capture_default_str();
  app.add_option("--heartbeat", flags.heartbeat, "how often to report to the coordinator")
      ->capture_default_str();
  app.add_option("--log-level", flags.log_level, "debug, info, warn or error")
      ->check(CLI::IsMember({"debug", "info", "warn", "error"}))
      ->capture_default_str();
}

// The token from --token-file, SUBLET_WORKER_TOKEN (then removed from the
// environment) or the deprecated --token, in that order.
std::optional<int> ReadToken(Flags& flags) {
  std::string& token = flags.options.token;
  if (!flags.token_file.empty()) {
    struct stat st {};
    if (stat(flags.token_file.c_str(), &st) != 0) {
      std::cerr << "--token-file " << flags.token_file << ": " << strerror(errno) << "\n";
      return 2;
    }
    if ((st.st_mode & 077) != 0) {
      std::cerr << "--token-file " << flags.token_file
                << ": readable by group or others (chmod 600 it)\n";
      return 2;
    }
    std::ifstream in(flags.token_file);
    std::getline(in, token);
  } else if (!token.empty()) {
    std::cerr << "sublet-worker: warning: --token puts the token where every process on this "
                 "node can read it (/proc/<pid>/cmdline); use --token-file\n";
  } else if (char* env = getenv("SUBLET_WORKER_TOKEN"); env != nullptr) {
    token = env;
    // Overwrite it where /proc/<pid>/environ shows it, not just unset it.
    memset(env, 'x', strlen(env));
  }
  unsetenv("SUBLET_WORKER_TOKEN");
  while (!token.empty() && (token.back() == '\r' || token.back() == ' ')) token.pop_back();
  return std::nullopt;  // none: the node proves itself by its key alone
}

// The node's key pair and the coordinator's key to pin.
std::optional<int> ReadKeys(Flags& flags) {
  if (flags.key_file.empty()) flags.key_file = flags.options.work_dir + "/node.key";
  absl::StatusOr<sublet::protocols::CurveKeyPair> keys =
      sublet::protocols::LoadOrCreateKeyFile(flags.key_file);
  if (!keys.ok()) {
    std::cerr << "--key-file: " << keys.status().message() << "\n";
    return 2;
  }
  if (flags.show_public_key) {
    std::cout << keys->public_key << "\n";
    return 0;
  }
  if (flags.coordinator_key.empty()) {
    if (const char* env = getenv("SUBLET_COORDINATOR_KEY")) flags.coordinator_key = env;
  }
  if (flags.coordinator_key.empty()) {
    std::cerr << "no coordinator key: pass --coordinator-key KEY or set SUBLET_COORDINATOR_KEY "
                 "(`sublet-coordinator --state-dir DIR --show-public-key` prints it)\n";
    return 2;
  }
  absl::StatusOr<std::string> pinned =
      sublet::protocols::ParseCurveKey(flags.coordinator_key, "--coordinator-key");
  if (!pinned.ok()) {
    std::cerr << pinned.status().message() << "\n";
    return 2;
  }
  flags.options.security = {.server_key = *pinned, .own_keys = *keys};
  return std::nullopt;
}

// Proves that ranks can be confined here, by starting and destroying a
// sandbox, so that a node that cannot confine never takes a rank. The
// message says what is missing.
absl::Status ProbeIsolation(const std::string& work_dir) {
  if (geteuid() != 0) {
    return absl::FailedPreconditionError(fmt::format(
        "not running as root (uid {}): confining ranks needs root", geteuid()));
  }
  const std::string probe = work_dir + "/isolation-probe";
  std::error_code error;
  std::filesystem::remove_all(probe, error);
  std::filesystem::create_directories(probe + "/work/rank", error);
  if (error) return absl::InternalError(fmt::format("create {}: {}", probe, error.message()));
  sublet::worker::JobSandboxSpec spec{.label = "the isolation probe", .uid = 65534,
                                      .gid = 65534, .storage_root = probe + "/storage",
                                      .tenant = "probe", .job = "1", .work_root = probe + "/work",
                                      .rank_dir = probe + "/work/rank"};
  if (chown(spec.rank_dir.c_str(), spec.uid, spec.gid) != 0) {
    return absl::InternalError(fmt::format("chown {}: {}", spec.rank_dir, strerror(errno)));
  }
  absl::StatusOr<std::unique_ptr<sublet::worker::JobSandbox>> sandbox =
      sublet::worker::JobSandbox::Start(spec);
  if (sandbox.ok()) (*sandbox)->Destroy();
  std::filesystem::remove_all(probe, error);
  return sandbox.status();
}

// MemTotal from /proc/meminfo, in bytes; 0 when unknown.
uint64_t MemTotalBytes() {
  std::ifstream in("/proc/meminfo");
  std::string key, unit;
  uint64_t kib = 0;
  while (in >> key >> kib >> unit) {
    if (key == "MemTotal:") return kib << 10;
  }
  return 0;
}

// Fills in what the flags alone do not give; on failure prints why and
// returns the exit code.
std::optional<int> Complete(Flags& flags) {
  absl::StatusOr<absl::Duration> heartbeat = sublet::ParseDuration(flags.heartbeat);
  if (!heartbeat.ok()) {
    std::cerr << "--heartbeat: " << heartbeat.status().message() << "\n";
    return 2;
  }
  flags.options.heartbeat = *heartbeat;
  for (auto [name, value] : {std::pair{"--coordinator", &flags.options.coordinator},
                             std::pair{"--name", &flags.options.node}}) {
    if (value->empty() && !flags.show_public_key) {
      std::cerr << name << " is required\n";
      return 2;
    }
  }
  if (flags.options.work_dir.empty() && flags.key_file.empty()) {
    std::cerr << "--work-dir is required\n";
    return 2;
  }
  if (flags.show_public_key) {
    std::error_code error;
    if (flags.key_file.empty()) std::filesystem::create_directories(flags.options.work_dir, error);
    return ReadKeys(flags);
  }
  if (std::optional<int> failed = ReadToken(flags)) return failed;
  uint64_t first = 0, last = 0;
  char dash = 0;
  std::istringstream range(flags.uids);
  if (!(range >> first >> dash >> last) || dash != '-' || !range.eof() || first == 0 ||
      last < first + 1 || last > 0xfffffffeULL) {
    std::cerr << "--uids: expected FIRST-LAST with 0 < FIRST < LAST, got '" << flags.uids
              << "'\n";
    return 2;
  }
  flags.options.isolation.enabled = !flags.no_isolation;
  flags.options.isolation.first_uid = static_cast<uid_t>(first);
  flags.options.isolation.uid_count = static_cast<uint32_t>(
      std::min<uint64_t>(last - first + 1, UINT32_MAX));
  std::error_code error;
  std::filesystem::create_directories(flags.options.work_dir, error);
  flags.options.work_dir = std::filesystem::absolute(flags.options.work_dir, error).string();
  if (error) {
    std::cerr << "--work-dir: " << error.message() << "\n";
    return 2;
  }
  if (std::optional<int> failed = ReadKeys(flags)) return failed;
  if (flags.gpus) {
    flags.options.gpus = sublet::worker::EmulatedGpus(*flags.gpus);
    return std::nullopt;
  }
  absl::StatusOr<std::vector<sublet::protocols::GpuInfo>> gpus = sublet::worker::NvmlGpus();
  if (!gpus.ok()) {
    std::cerr << gpus.status().message() << "\n";
    return absl::IsNotFound(gpus.status()) ? 2 : 1;
  }
  flags.options.gpus = *std::move(gpus);
  return std::nullopt;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"sublet-worker: the Sublet node agent. Reports this node's GPUs to the "
               "coordinator and runs the ranks it places here."};
  Flags flags;
  DefineFlags(app, flags);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);
    return code == 0 ? 0 : 2;
  }
  if (std::optional<int> failed = Complete(flags)) return *failed;

  sublet::InitLogging("worker", flags.log_level);
  for (const sublet::protocols::GpuInfo& gpu : flags.options.gpus) {
    sublet::Log(sublet::LogLevel::kInfo, "gpu",
                {{"index", gpu.index}, {"model", gpu.model}, {"memory_mib", gpu.memory_mib}});
  }
  std::unique_ptr<sublet::worker::SandboxConfinement> confinement;
  if (flags.options.isolation.enabled) {
    absl::StatusOr<std::unique_ptr<sublet::worker::SandboxConfinement>> made =
        sublet::worker::SandboxConfinement::Create();
    absl::Status probed = made.ok() ? ProbeIsolation(flags.options.work_dir) : made.status();
    if (!probed.ok()) {
      std::cerr << "sublet-worker: cannot confine ranks on this node: " << probed.message()
                << "\n  (run as root on a kernel with mount, PID and IPC namespaces and "
                   "seccomp, or pass --no-isolation to run ranks unconfined)\n";
      return 3;
    }
    confinement = *std::move(made);
    sublet::worker::IsolationOptions& isolation = flags.options.isolation;
    // Ranks find sublet-train and friends next to the worker (the PATH prefix
    // below): that directory must be there for them even under a hidden /tmp.
    if (const std::string own = sublet::worker::OwnExecutableDir(); !own.empty()) {
      isolation.shared.push_back(own);
    }
    if (absl::Status cgroups = sublet::worker::JobCgroup::Probe(); cgroups.ok()) {
      isolation.cgroups = true;
      isolation.memory_per_gpu =
          flags.memory_mib_per_gpu > 0
              ? flags.memory_mib_per_gpu << 20
              : MemTotalBytes() / std::max<size_t>(1, flags.options.gpus.size());
    } else {
      // The node says so: `sublet nodes` shows "sandbox, no cgroup limits".
      sublet::Log(sublet::LogLevel::kWarn, "cgroups_unavailable",
                  {{"why", std::string(cgroups.message())},
                   {"effect", "jobs run without memory and process-count limits"}});
    }
  } else {
    sublet::Log(sublet::LogLevel::kWarn, "isolation_off",
                {{"why", "--no-isolation: ranks run as this worker's user and see the node"}});
  }
  InstallSignalHandlers();
  zmq::context_t context;
  sublet::RealClock clock;
  sublet::worker::PosixProcessLauncher launcher(
      {.path_prefix = sublet::worker::OwnExecutableDir(),
       .confinement = confinement.get(),
       .environment = flags.options.isolation.enabled
                          ? sublet::worker::PosixProcessLauncher::Options::Environment::kAllowList
                          : sublet::worker::PosixProcessLauncher::Options::Environment::kWorkerMinusSublet});
  sublet::worker::Worker worker(flags.options, clock, launcher, context);
  absl::Status status = worker.Run(g_stop);
  if (!status.ok()) {
    sublet::Log(sublet::LogLevel::kError, "worker_failed", {{"error", status.ToString()}});
    return 1;
  }
  return 0;
}

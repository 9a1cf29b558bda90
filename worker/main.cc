// sublet-worker: parses flags, finds the GPUs and runs one Worker until
// SIGTERM or SIGINT. Exit codes: 0 after a clean stop, 2 for bad flags or no
// GPUs, 1 for anything else.
#include <signal.h>

#include <atomic>
#include <filesystem>
#include <iostream>
#include <optional>
#include <string>

#include <CLI/CLI.hpp>
#include <zmq.hpp>

#include "common/clock.h"
#include "common/duration.h"
#include "common/log.h"
#include "worker/inventory.h"
#include "worker/process_launcher.h"
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
};

void DefineFlags(CLI::App& app, Flags& flags) {
  auto& o = flags.options;
  app.add_option("--coordinator", o.coordinator,
                 "ZeroMQ endpoint of the coordinator, e.g. tcp://10.0.0.1:7700")
      ->required();
  app.add_option("--name", o.node, "this node's name, unique in the cluster")->required();
  app.add_option("--gpus", flags.gpus,
                 "emulate this many GPUs (model \"emulated\"); without it the GPUs come "
                 "from the NVIDIA driver")
      ->check(CLI::Range(0, 1024));
  app.add_option("--work-dir", o.work_dir,
                 "directory for rank working directories, logs, pid files and the control "
                 "socket (created if missing)")
      ->required();
  app.add_option("--token", o.token, "the worker-pool token from the coordinator's config")
      ->required();
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

// Fills in what the flags alone do not give; on failure prints why and
// returns the exit code.
std::optional<int> Complete(Flags& flags) {
  absl::StatusOr<absl::Duration> heartbeat = sublet::ParseDuration(flags.heartbeat);
  if (!heartbeat.ok()) {
    std::cerr << "--heartbeat: " << heartbeat.status().message() << "\n";
    return 2;
  }
  flags.options.heartbeat = *heartbeat;
  std::error_code error;
  std::filesystem::create_directories(flags.options.work_dir, error);
  flags.options.work_dir = std::filesystem::absolute(flags.options.work_dir, error).string();
  if (error) {
    std::cerr << "--work-dir: " << error.message() << "\n";
    return 2;
  }
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
  InstallSignalHandlers();
  zmq::context_t context;
  sublet::RealClock clock;
  sublet::worker::PosixProcessLauncher launcher(
      {.path_prefix = sublet::worker::OwnExecutableDir()});
  sublet::worker::Worker worker(flags.options, clock, launcher, context);
  absl::Status status = worker.Run(g_stop);
  if (!status.ok()) {
    sublet::Log(sublet::LogLevel::kError, "worker_failed", {{"error", status.ToString()}});
    return 1;
  }
  return 0;
}

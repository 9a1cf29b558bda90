// sublet-coordinator: wires config, store, clock and socket together and runs
// the event loop until SIGINT/SIGTERM.
#include <sys/stat.h>

#include <atomic>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>

#include <CLI/CLI.hpp>

#include "common/log.h"
#include "coordinator/coordinator.h"
#include "fmt/format.h"

namespace {
std::atomic<bool> g_stop{false};
void OnSignal(int) { g_stop.store(true); }
}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"sublet-coordinator: stores jobs durably, gang-schedules them onto worker nodes "
               "and serves the tenant/admin API."};
  std::string listen = "tcp://127.0.0.1:7700";
  std::string state_dir;
  std::string config_path;
  std::string log_level = "info";
  app.add_option("--listen", listen, "ZeroMQ endpoint to bind")->capture_default_str();
  app.add_option("--state-dir", state_dir, "directory for the durable state (state.db)")->required();
  CLI::Option* config_option =
      app.add_option("--config", config_path, "YAML config: storage_root, tokens, timeouts");
  app.add_option("--log-level", log_level, "debug|info|warn|error")->capture_default_str();
  std::string ready_file;
  app.add_option("--ready-file", ready_file,
                 "once the socket is bound and the state recovered, write the endpoint there "
                 "(for supervisors such as `sublet up`)");
  bool show_public_key = false;
  app.add_flag("--show-public-key", show_public_key,
               "print the coordinator's CURVE public key (made in --state-dir on first use) and "
               "exit: what clients and workers pin with --coordinator-key");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    return rc == 0 ? 0 : 2;
  }
  sublet::InitLogging("coordinator", log_level);
  if (show_public_key) {
    std::error_code error;
    std::filesystem::create_directories(state_dir, error);
    std::filesystem::permissions(state_dir, std::filesystem::perms::owner_all,
                                 std::filesystem::perm_options::replace, error);
    auto keys = sublet::coordinator::CoordinatorKeys(state_dir);
    if (!keys.ok()) {
      std::cerr << "sublet-coordinator: " << keys.status().message() << "\n";
      return 1;
    }
    std::cout << keys->public_key << "\n";
    return 0;
  }
  if (config_option->count() == 0) {
    std::cerr << "sublet-coordinator: --config is required\n";
    return 2;
  }
  auto config = sublet::coordinator::LoadConfig(config_path);
  if (!config.ok()) {
    std::cerr << "sublet-coordinator: " << config.status().message() << "\n";
    return 2;
  }
  // It holds every token (or its hash): readable by its owner only.
  if (struct stat st {}; stat(config_path.c_str(), &st) == 0 && (st.st_mode & 077) != 0) {
    sublet::Log(sublet::LogLevel::kWarn, "config_readable_by_others",
                {{"config", config_path},
                 {"mode", fmt::format("{:o}", st.st_mode & 07777)},
                 {"fix", fmt::format("chmod 600 {}", config_path)}});
  }
  sublet::coordinator::CoordinatorOptions options;
  options.listen = listen;
  options.state_dir = state_dir;
  options.config = *std::move(config);
  zmq::context_t context;
  sublet::RealClock clock;
  auto coordinator = sublet::coordinator::Coordinator::Create(std::move(options), context, clock);
  if (!coordinator.ok()) {
    std::cerr << "sublet-coordinator: " << coordinator.status().message() << "\n";
    return coordinator.status().code() == absl::StatusCode::kInvalidArgument ? 2 : 1;
  }
  // Printed as well as logged: the operator hands it to clients and workers.
  std::cout << "coordinator public key: " << (*coordinator)->public_key() << std::endl;
  if (!ready_file.empty()) {
    // Written whole, then renamed: a reader never sees half an endpoint.
    const std::string tmp = ready_file + ".tmp";
    std::ofstream(tmp) << (*coordinator)->endpoint() << "\n";
    if (std::rename(tmp.c_str(), ready_file.c_str()) != 0) {
      std::cerr << "sublet-coordinator: cannot write --ready-file " << ready_file << "\n";
      return 1;
    }
  }
  // SIGTERM (systemctl stop) and SIGINT: the turn under way finishes and
  // commits, the store is closed, exit 0.
  struct sigaction stop = {};
  stop.sa_handler = OnSignal;
  sigemptyset(&stop.sa_mask);
  sigaction(SIGINT, &stop, nullptr);
  sigaction(SIGTERM, &stop, nullptr);
  std::signal(SIGPIPE, SIG_IGN);
  (*coordinator)->Run(g_stop);
  coordinator->reset();
  sublet::Log(sublet::LogLevel::kInfo, "stopped");
  return 0;
}

#include "client/up.h"

#include <fmt/format.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <ostream>
#include <thread>
#include <vector>

#include "client/client.h"
#include "client/context.h"
#include "client/internal/child_process.h"
#include "client/output.h"
#include "common/plural.h"
#include "protocols/curve.h"

extern char** environ;

namespace sublet::client {
namespace {

namespace fs = std::filesystem;
using internal::ChildProcess;
using internal::StopSignals;

constexpr char kTenantToken[] = "dev-token";
constexpr char kAdminToken[] = "admin-token";
constexpr std::chrono::milliseconds kPollInterval{250};
constexpr int kLogTailLines = 20;

absl::StatusOr<std::string> PrepareStateDir(const std::string& requested) {
  if (requested.empty()) {
    std::string pattern = "/tmp/sublet-up-XXXXXX";
    if (mkdtemp(pattern.data()) == nullptr) return absl::InternalError("mkdtemp failed");
    return pattern;
  }
  std::error_code ec;
  fs::create_directories(requested, ec);
  if (ec)
    return absl::InvalidArgumentError(fmt::format("--state-dir {}: {}", requested, ec.message()));
  return fs::absolute(requested).string();
}

absl::StatusOr<std::string> FindBinDir(const std::string& requested) {
  std::error_code ec;
  const fs::path dir = requested.empty() ? fs::read_symlink("/proc/self/exe", ec).parent_path()
                                         : fs::path(requested);
  if (ec) return absl::InternalError(fmt::format("/proc/self/exe: {}", ec.message()));
  for (const char* binary : {"sublet-coordinator", "sublet-worker"}) {
    if (access((dir / binary).c_str(), X_OK) != 0) {
      return absl::FailedPreconditionError(
          fmt::format("{} not found in {} (build it first: scripts/build)", binary, dir.string()));
    }
  }
  return dir.string();
}

// This process's environment with `bin_dir` first on PATH, so that job specs
// can name sublet-train without a path.
std::vector<std::string> ChildEnv(const std::string& bin_dir) {
  std::vector<std::string> env;
  std::string path = bin_dir;
  for (char** entry = environ; *entry != nullptr; ++entry) {
    std::string_view var = *entry;
    if (var.starts_with("PATH=")) {
      path += ":" + std::string(var.substr(5));
    } else {
      env.emplace_back(var);
    }
  }
  env.push_back("PATH=" + path);
  return env;
}

// Writes `text` to `path`, readable by its owner only (tokens are in it).
absl::Status WritePrivateFile(const std::string& path, const std::string& text) {
  const int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return absl::InternalError(fmt::format("create {}: {}", path, strerror(errno)));
  const bool wrote = write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
  const bool tightened = fchmod(fd, 0600) == 0;
  close(fd);
  if (!wrote || !tightened) {
    return absl::InternalError(fmt::format("write {}: {}", path, strerror(errno)));
  }
  return absl::OkStatus();
}

// 128 bits from the kernel's CSPRNG, as 32 hex digits.
absl::StatusOr<std::string> RandomToken() {
  unsigned char bytes[16];
  if (getrandom(bytes, sizeof(bytes), 0) != static_cast<ssize_t>(sizeof(bytes))) {
    return absl::InternalError(fmt::format("getrandom: {}", strerror(errno)));
  }
  std::string hex;
  for (unsigned char b : bytes) hex += fmt::format("{:02x}", b);
  return hex;
}

absl::Status CheckTenantName(const std::string& name) {
  const bool safe = !name.empty() && name.size() <= 64 && name[0] != '.' &&
                    name.find_first_not_of(
                        "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                        "0123456789._-") == std::string::npos;
  if (safe) return absl::OkStatus();
  return absl::InvalidArgumentError(fmt::format(
      "--tenants: '{}' is not a tenant name (ASCII letters, digits and ._-, at most 64 bytes, "
      "not starting with .)",
      name));
}

// Writes the context file, with `token`, unless one for another coordinator
// exists. Returns whether it wrote it.
bool ClaimContext(const std::string& path, const std::string& listen, const std::string& token,
                  const std::string& coordinator_key, std::ostream& err) {
  if (path.empty()) return false;
  absl::StatusOr<std::optional<ContextFile>> existing = ReadContextFile(path);
  if (!existing.ok() || (existing->has_value() && (*existing)->coordinator != listen)) {
    err << fmt::format(
               "sublet up: leaving {} alone (it is for another cluster); use "
               "--coordinator {} --coordinator-key '{}' --token {}",
               path, listen, coordinator_key, token)
        << std::endl;
    return false;
  }
  absl::Status written = WriteContextFile(
      path, {.coordinator = listen, .coordinator_key = coordinator_key, .token = token});
  if (!written.ok()) err << "sublet up: " << written.message() << std::endl;
  return written.ok();
}

void ReleaseContext(const std::string& path, const std::string& listen) {
  absl::StatusOr<std::optional<ContextFile>> existing = ReadContextFile(path);
  if (existing.ok() && existing->has_value() && (*existing)->coordinator == listen) {
    std::error_code ec;
    fs::remove(path, ec);
  }
}

class LocalCluster {
 public:
  LocalCluster(const UpOptions& options, std::vector<UpTenant> tenants, std::string state_dir,
               std::string bin_dir, std::ostream& err)
      : options_(options),
        tenants_(std::move(tenants)),
        state_dir_(std::move(state_dir)),
        bin_dir_(std::move(bin_dir)),
        err_(err) {}

  // Starts the coordinator, waits until it has bound its socket, then the
  // workers: they never start when the coordinator cannot (a port already
  // taken by another cluster must not get our workers).
  absl::Status Start(StopSignals& signals);
  // OK when every node is ready; Cancelled when a stop signal came first.
  absl::Status WaitUntilReady(StopSignals& signals);
  // OK after a stop signal; Internal naming the child when one died.
  absl::Status RunUntilStopped(StopSignals& signals);
  void Stop();
  const std::string& coordinator_key() const { return coordinator_key_; }

 private:
  absl::Status Spawn(const std::string& name, std::vector<std::string> args);
  absl::Status CheckChildren();
  absl::Status WaitForCoordinator(StopSignals& signals, const std::string& ready_file);
  absl::StatusOr<int> ReadyNodes(Client& client);

  const UpOptions& options_;
  const std::vector<UpTenant> tenants_;
  const std::string state_dir_;
  const std::string bin_dir_;
  std::ostream& err_;
  std::vector<ChildProcess> children_;
  std::string coordinator_key_;
};

absl::Status LocalCluster::Spawn(const std::string& name, std::vector<std::string> args) {
  args.insert(args.begin(), fmt::format("{}/sublet-{}", bin_dir_,
                                        name == "coordinator" ? "coordinator" : "worker"));
  SUBLET_ASSIGN_OR_RETURN(ChildProcess child,
                          ChildProcess::Spawn(name, args, ChildEnv(bin_dir_),
                                              fmt::format("{}/{}.log", state_dir_, name)));
  children_.push_back(std::move(child));
  return absl::OkStatus();
}

absl::Status LocalCluster::Start(StopSignals& signals) {
  const std::string config = state_dir_ + "/coordinator.yaml";
  // The coordinator's key pair, made here so that the nodes can pin it, and
  // each node's, listed in the config: only these nodes may register.
  std::error_code ec;
  fs::create_directories(state_dir_ + "/coordinator", ec);
  fs::permissions(state_dir_ + "/coordinator", fs::perms::owner_all, fs::perm_options::replace, ec);
  SUBLET_ASSIGN_OR_RETURN(
      protocols::CurveKeyPair coordinator_keys,
      protocols::LoadOrCreateKeyFile(state_dir_ + "/coordinator/coordinator.key"));
  coordinator_key_ = coordinator_keys.public_key;
  std::vector<std::string> node_keys;
  for (int i = 1; i <= options_.workers; ++i) {
    const std::string work_dir = fmt::format("{}/node-{}", state_dir_, i);
    fs::create_directories(work_dir, ec);
    SUBLET_ASSIGN_OR_RETURN(protocols::CurveKeyPair keys,
                            protocols::LoadOrCreateKeyFile(work_dir + "/node.key"));
    node_keys.push_back(keys.public_key);
  }
  SUBLET_RETURN_IF_ERROR(
      WritePrivateFile(config, RenderUpCoordinatorConfig(state_dir_, tenants_, node_keys)));
  fs::create_directories(state_dir_ + "/storage", ec);
  const std::string ready_file = state_dir_ + "/coordinator.ready";
  fs::remove(ready_file, ec);
  SUBLET_RETURN_IF_ERROR(Spawn("coordinator",
                               {"--listen", options_.listen, "--state-dir",
                                state_dir_ + "/coordinator", "--config", config, "--ready-file",
                                ready_file}));
  SUBLET_RETURN_IF_ERROR(WaitForCoordinator(signals, ready_file));
  const bool isolate = !options_.no_isolation && geteuid() == 0;
  if (!isolate && !options_.no_isolation) {
    err_ << "sublet up: not running as root, so ranks run unconfined (--no-isolation)"
         << std::endl;
  }
  for (int i = 1; i <= options_.workers; ++i) {
    const std::string name = fmt::format("node-{}", i);
    std::vector<std::string> args = {"--coordinator",     options_.listen,
                                     "--coordinator-key", coordinator_key_,
                                     "--name",            name,
                                     "--gpus",            std::to_string(options_.gpus),
                                     "--work-dir",        state_dir_ + "/" + name};
    if (isolate) {
      // Ranks see nothing of the cluster's directory but their own parts:
      // not the config, the logs, the state, the other nodes.
      args.insert(args.end(), {"--hide", state_dir_});
    } else {
      args.push_back("--no-isolation");
    }
    SUBLET_RETURN_IF_ERROR(Spawn(name, args));
  }
  return absl::OkStatus();
}

absl::Status LocalCluster::WaitForCoordinator(StopSignals& signals,
                                              const std::string& ready_file) {
  const auto deadline = std::chrono::steady_clock::now() + options_.ready_timeout;
  ChildProcess& coordinator = children_.front();
  while (!fs::exists(ready_file)) {
    if (coordinator.Poll()) {
      return absl::UnavailableError(fmt::format(
          "the coordinator could not start on {} ({}); is another cluster using that address? "
          "pass --listen. Last lines of {}:\n{}",
          options_.listen, coordinator.DescribeExit(), coordinator.log_path(),
          internal::TailFile(coordinator.log_path(), kLogTailLines)));
    }
    if (std::chrono::steady_clock::now() >= deadline) {
      return absl::DeadlineExceededError(fmt::format(
          "the coordinator did not start within {}s; see {}", options_.ready_timeout.count(),
          coordinator.log_path()));
    }
    if (signals.Wait(std::chrono::milliseconds(50))) return absl::CancelledError("stopped");
  }
  return absl::OkStatus();
}

absl::Status LocalCluster::CheckChildren() {
  for (ChildProcess& child : children_) {
    if (!child.Poll()) continue;
    return absl::InternalError(fmt::format("{} exited unexpectedly ({}); last lines of {}:\n{}",
                                           child.name(), child.DescribeExit(), child.log_path(),
                                           internal::TailFile(child.log_path(), kLogTailLines)));
  }
  return absl::OkStatus();
}

absl::StatusOr<int> LocalCluster::ReadyNodes(Client& client) {
  SUBLET_ASSIGN_OR_RETURN(std::vector<protocols::NodeInfo> nodes, client.ListNodes());
  int ready = 0;
  for (const auto& node : nodes) ready += node.state == "ready" ? 1 : 0;
  return ready;
}

absl::Status LocalCluster::WaitUntilReady(StopSignals& signals) {
  Client client({.endpoint = options_.listen,
                 .token = kAdminToken,
                 .coordinator_key = coordinator_key_,
                 .timeout = kPollInterval * 4});
  const auto deadline = std::chrono::steady_clock::now() + options_.ready_timeout;
  int last_ready = -1;
  while (std::chrono::steady_clock::now() < deadline) {
    SUBLET_RETURN_IF_ERROR(CheckChildren());
    absl::StatusOr<int> ready = ReadyNodes(client);
    if (ready.ok() && *ready != last_ready) {
      err_ << fmt::format("waiting for nodes: {}/{} ready", *ready, options_.workers) << std::endl;
      last_ready = *ready;
    }
    if (ready.ok() && *ready >= options_.workers) return absl::OkStatus();
    if (!ready.ok() && !absl::IsUnavailable(ready.status())) return ready.status();
    if (signals.Wait(kPollInterval)) return absl::CancelledError("stopped");
  }
  return absl::DeadlineExceededError(
      fmt::format("the nodes were not ready within {}s; see the logs in {}",
                  options_.ready_timeout.count(), state_dir_));
}

absl::Status LocalCluster::RunUntilStopped(StopSignals& signals) {
  while (true) {
    SUBLET_RETURN_IF_ERROR(CheckChildren());
    if (signals.Wait(kPollInterval)) return absl::OkStatus();
  }
}

void LocalCluster::Stop() {
  for (ChildProcess& child : children_) child.Signal(SIGTERM);
  const auto deadline = std::chrono::steady_clock::now() + options_.stop_grace;
  auto all_exited = [this] {
    bool all = true;
    for (ChildProcess& child : children_) all = child.Poll() && all;
    return all;
  };
  while (!all_exited()) {
    if (std::chrono::steady_clock::now() >= deadline) {
      for (ChildProcess& child : children_) child.Signal(SIGKILL);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

void PrintBanner(const UpOptions& options, const std::vector<UpTenant>& tenants,
                 const std::string& state_dir, const std::string& coordinator_key,
                 bool wrote_context, std::ostream& out) {
  if (options.json) {
    nlohmann::json listed = nlohmann::json::array();
    for (const UpTenant& t : tenants) listed.push_back({{"name", t.name}, {"token", t.token}});
    out << DumpJson({{"coordinator", options.listen},
                     {"coordinator_key", coordinator_key},
                     {"token", tenants.front().token},
                     {"tenants", listed},
                     {"admin_token", kAdminToken},
                     {"nodes", options.workers},
                     {"gpus_per_node", options.gpus},
                     {"state_dir", state_dir},
                     {"context_file", wrote_context ? nlohmann::json(options.context_path)
                                                    : nlohmann::json(nullptr)}})
        << std::flush;
    return;
  }
  out << fmt::format("cluster ready: {} × {} at {}\n", Plural(options.workers, "node"),
                     Plural(options.gpus, "GPU"), options.listen);
  out << (wrote_context ? fmt::format("  try: sublet submit examples/jobs/hello.yaml (as {})\n",
                                      tenants.front().name)
                        : fmt::format("  try: sublet --coordinator {} --coordinator-key '{}' "
                                      "--token {} submit examples/jobs/hello.yaml\n",
                                      options.listen, coordinator_key, tenants.front().token));
  out << fmt::format("  coordinator key: {}\n", coordinator_key);
  for (const UpTenant& t : tenants) {
    out << fmt::format("  tenant {}: token {}\n", t.name, t.token);
  }
  out << fmt::format("  admin token: {}\n", kAdminToken);
  out << fmt::format("  logs in {}\n  Ctrl-C stops the cluster\n", state_dir) << std::flush;
}

}  // namespace

absl::StatusOr<std::vector<UpTenant>> MakeUpTenants(const std::vector<std::string>& names) {
  if (names.empty()) return std::vector<UpTenant>{{"dev", kTenantToken}};
  std::vector<UpTenant> tenants;
  for (const std::string& name : names) {
    SUBLET_RETURN_IF_ERROR(CheckTenantName(name));
    for (const UpTenant& t : tenants) {
      if (t.name == name) {
        return absl::InvalidArgumentError(fmt::format("--tenants: '{}' is named twice", name));
      }
    }
    SUBLET_ASSIGN_OR_RETURN(std::string token, RandomToken());
    tenants.push_back({name, std::move(token)});
  }
  return tenants;
}

std::string RenderUpCoordinatorConfig(const std::string& state_dir,
                                      const std::vector<UpTenant>& tenants,
                                      const std::vector<std::string>& node_keys) {
  std::string listed;
  for (const UpTenant& t : tenants) {
    listed += fmt::format("  - {{name: {}, token: \"{}\"}}\n", t.name, t.token);
  }
  std::string keys;
  // Z85 has characters YAML treats specially ({, #, &, ...) but no quote:
  // single-quoted, a key is taken as it is.
  for (const std::string& key : node_keys) keys += fmt::format("    - '{}'\n", key);
  return fmt::format(
      "storage_root: {}/storage\n"
      "heartbeat_timeout: 10s\n"
      "tenants:\n"
      "{}"
      "admins:\n"
      "  - {{name: admin, token: \"{}\"}}\n"
      "workers:\n"
      "  keys:\n"
      "{}",
      state_dir, listed, kAdminToken, keys);
}

absl::Status RunUp(const UpOptions& options, std::ostream& out, std::ostream& err) {
  if (options.workers < 1) return absl::InvalidArgumentError("--workers: must be at least 1");
  if (options.gpus < 1) return absl::InvalidArgumentError("--gpus: must be at least 1");
  SUBLET_ASSIGN_OR_RETURN(std::vector<UpTenant> tenants, MakeUpTenants(options.tenants));
  SUBLET_ASSIGN_OR_RETURN(const std::string bin_dir, FindBinDir(options.bin_dir));
  SUBLET_ASSIGN_OR_RETURN(const std::string state_dir, PrepareStateDir(options.state_dir));

  StopSignals signals;  // before any thread or child exists
  LocalCluster cluster(options, tenants, state_dir, bin_dir, err);
  absl::Status status = cluster.Start(signals);
  if (status.ok()) status = cluster.WaitUntilReady(signals);
  bool wrote_context = false;
  if (status.ok()) {
    wrote_context = ClaimContext(options.context_path, options.listen, tenants.front().token,
                                 cluster.coordinator_key(), err);
    PrintBanner(options, tenants, state_dir, cluster.coordinator_key(), wrote_context, out);
    status = cluster.RunUntilStopped(signals);
  }
  err << "sublet up: stopping the cluster" << std::endl;
  cluster.Stop();
  if (wrote_context) ReleaseContext(options.context_path, options.listen);
  return absl::IsCancelled(status) ? absl::OkStatus() : status;
}

}  // namespace sublet::client

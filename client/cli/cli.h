// The `sublet` command line: global flags, one subcommand per verb of
// DESIGN.md, and the Session every command runs with. RunCli is the whole
// program; main() only hands it the process's argv, environment and streams.
#pragma once

#include <CLI/CLI.hpp>
#include <chrono>
#include <functional>
#include <iosfwd>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "client/client.h"
#include "client/context.h"
#include "client/output.h"
#include "common/status.h"

namespace sublet::client::cli {

// What a command needs from the outside world once the flags are parsed.
// Output goes through it so that `-o json` prints exactly one document.
class Session {
 public:
  Session(SettingFlags flags, EnvLookup env, OutputFormat format, std::chrono::milliseconds timeout,
          std::ostream& out, std::ostream& err);

  bool json() const { return format_ == OutputFormat::kJson; }
  std::ostream& out() { return out_; }
  std::ostream& err() { return err_; }
  const EnvLookup& env() const { return env_; }

  // A client for the resolved coordinator and token, created on first use.
  absl::StatusOr<Client*> client();

  // Prints `document` on stdout (json mode) and returns 0.
  int PrintJson(const nlohmann::json& document);
  // Reports `status` ("sublet: <message>" on stderr, or the JSON error
  // document on stdout) and returns its exit code.
  int Fail(const absl::Status& status);

 private:
  SettingFlags flags_;
  EnvLookup env_;
  OutputFormat format_;
  std::chrono::milliseconds timeout_;
  std::ostream& out_;
  std::ostream& err_;
  std::unique_ptr<Client> client_;
};

// What the chosen subcommand runs; set while parsing.
using Command = std::function<int(Session&)>;

// Each adds its subcommands to `app` and, when one is given on the command
// line, stores what it runs in `*chosen`.
void AddSubmitCommand(CLI::App& app, Command* chosen);
void AddJobCommands(CLI::App& app, Command* chosen);  // jobs, show, cancel
void AddLogsCommand(CLI::App& app, Command* chosen);
void AddNodesCommand(CLI::App& app, Command* chosen);
void AddUpCommand(CLI::App& app, Command* chosen);
void AddCkptCommands(CLI::App& app, Command* chosen);  // ckpt ls, ckpt verify
void AddReclaimCommands(CLI::App& app, Command* chosen);  // reclaim, release, reclaims
void AddAuditCommand(CLI::App& app, Command* chosen);
void AddTenantsCommand(CLI::App& app, Command* chosen);

// Parses argv and runs the command; returns the process exit code.
int RunCli(int argc, const char* const* argv, EnvLookup env, std::ostream& out, std::ostream& err);

}  // namespace sublet::client::cli

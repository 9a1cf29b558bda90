#include <fmt/format.h>

#include <ostream>
#include <string>
#include <string_view>
#include <utility>

#include "client/cli/cli.h"
#include "common/duration.h"

namespace sublet::client::cli {
namespace {

struct GlobalFlags {
  std::string coordinator;
  std::string token;
  std::string coordinator_key;
  std::string output = "table";
  std::string timeout = "5s";
  CLI::Option* coordinator_option = nullptr;
  CLI::Option* token_option = nullptr;
  CLI::Option* coordinator_key_option = nullptr;
};

void AddGlobalFlags(CLI::App& app, GlobalFlags& flags) {
  flags.coordinator_option =
      app.add_option("--coordinator", flags.coordinator,
                     "Coordinator address (env SUBLET_COORDINATOR, then the context file "
                     "`sublet up` writes, then tcp://127.0.0.1:7700)");
  flags.token_option =
      app.add_option("--token", flags.token, "API token (env SUBLET_TOKEN, then the context file)");
  flags.coordinator_key_option = app.add_option(
      "--coordinator-key", flags.coordinator_key,
      "The coordinator's CURVE public key to pin (env SUBLET_COORDINATOR_KEY, then the context "
      "file; `sublet-coordinator --show-public-key` prints it)");
  app.add_option("-o,--output", flags.output, "Output format: table or json")
      ->check(CLI::IsMember({"table", "json"}));
  app.add_option("--timeout", flags.timeout,
                 "How long to wait for the coordinator per request (default 5s)");
}

// Parse errors happen before `-o` is known for sure, so look for it by hand:
// json mode must print its one JSON document even for a bad flag.
bool ArgvAsksForJson(int argc, const char* const* argv) {
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    if (arg == "-ojson" || arg == "--output=json") return true;
    if ((arg == "-o" || arg == "--output") && i + 1 < argc &&
        std::string_view(argv[i + 1]) == "json") {
      return true;
    }
  }
  return false;
}

int ReportParseError(CLI::App& app, const CLI::ParseError& error, bool json, std::ostream& out,
                     std::ostream& err) {
  if (error.get_exit_code() == static_cast<int>(CLI::ExitCodes::Success)) {
    // --help and friends: CLI11 prints them.
    return app.exit(error, out, err);
  }
  Session session({}, {}, json ? OutputFormat::kJson : OutputFormat::kTable, {}, out, err);
  const int code = session.Fail(absl::InvalidArgumentError(error.what()));
  if (!json) err << "Run with --help for usage." << std::endl;
  return code;
}

}  // namespace

int RunCli(int argc, const char* const* argv, EnvLookup env, std::ostream& out, std::ostream& err) {
  CLI::App app{"sublet: submit, watch and cancel GPU training jobs on a Sublet cluster."};
  app.require_subcommand(1);
  app.fallthrough();  // global flags may follow the subcommand too
  GlobalFlags flags;
  AddGlobalFlags(app, flags);
  Command chosen;
  AddSubmitCommand(app, &chosen);
  AddJobCommands(app, &chosen);
  AddLogsCommand(app, &chosen);
  AddNodesCommand(app, &chosen);
  AddUpCommand(app, &chosen);
  AddCkptCommands(app, &chosen);
  AddReclaimCommands(app, &chosen);
  AddAuditCommand(app, &chosen);
  AddTenantsCommand(app, &chosen);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& error) {
    return ReportParseError(app, error, ArgvAsksForJson(argc, argv), out, err);
  }

  const OutputFormat format = flags.output == "json" ? OutputFormat::kJson : OutputFormat::kTable;
  absl::StatusOr<absl::Duration> timeout = ParseDuration(flags.timeout);
  if (!timeout.ok()) {
    Session session({}, {}, format, {}, out, err);
    return session.Fail(absl::InvalidArgumentError(
        fmt::format("--timeout: {}", std::string(timeout.status().message()))));
  }
  SettingFlags setting_flags;
  if (flags.coordinator_option->count() > 0) setting_flags.coordinator = flags.coordinator;
  if (flags.token_option->count() > 0) setting_flags.token = flags.token;
  if (flags.coordinator_key_option->count() > 0) {
    setting_flags.coordinator_key = flags.coordinator_key;
  }
  Session session(std::move(setting_flags), std::move(env), format,
                  absl::ToChronoMilliseconds(*timeout), out, err);
  return chosen(session);
}

}  // namespace sublet::client::cli

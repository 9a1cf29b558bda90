// `sublet up`: flags to UpOptions; the cluster itself lives in client/up.cc.
#include <memory>

#include "client/cli/cli.h"
#include "client/up.h"

namespace sublet::client::cli {

void AddUpCommand(CLI::App& app, Command* chosen) {
  auto options = std::make_shared<UpOptions>();
  CLI::App* cmd = app.add_subcommand(
      "up",
      "Run a local cluster in the foreground: a coordinator and N workers with emulated "
      "GPUs, with a tenant token (dev-token, or one per --tenants name) and an admin token "
      "(admin-token). Writes "
      "the context file so other sublet commands find it; Ctrl-C stops it.");
  cmd->add_option("--workers", options->workers, "Number of worker nodes (default 2)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--gpus", options->gpus, "Emulated GPUs per node (default 2)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--listen", options->listen,
                  "Coordinator address (default tcp://127.0.0.1:7700)");
  cmd->add_option("--state-dir", options->state_dir,
                  "Directory for config, state, logs and storage (default: a fresh "
                  "directory under /tmp)");
  cmd->add_option("--tenants", options->tenants,
                  "Tenants to configure, comma-separated (e.g. acme,globex), each with a random "
                  "token printed in the banner; the context file gets the first one's. "
                  "Default: one tenant, dev (token dev-token)")
      ->delimiter(',');
  cmd->add_flag("--no-isolation", options->no_isolation,
                "Run ranks unconfined, as your user (the default when not root; as root "
                "each job runs sandboxed as its tenant's uid)");
  cmd->callback([chosen, options] {
    *chosen = [options](Session& session) {
      options->context_path = ContextFilePath(session.env());
      options->json = session.json();
      absl::Status status = RunUp(*options, session.out(), session.err());
      return status.ok() ? 0 : session.Fail(status);
    };
  });
}

}  // namespace sublet::client::cli

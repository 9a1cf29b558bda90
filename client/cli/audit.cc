// `sublet audit [--since DURATION] [--limit N]` (admin token only): the
// coordinator's audit log, oldest first: reclaims, releases, hand-overs and
// the refusals (a tenant asking, a node that does not exist, too many GPUs,
// a worker claiming a connected node's name), each with who and why.
#include <fmt/format.h>

#include <memory>

#include "client/cli/cli.h"
#include "common/duration.h"

namespace sublet::client::cli {
namespace {

struct AuditFlags {
  std::string since;     // empty: from the beginning
  uint32_t limit = 100;  // the newest N
};

int RunAudit(const AuditFlags& flags, Session& session) {
  protocols::ListAuditRequest request;
  request.limit = flags.limit;
  if (!flags.since.empty()) {
    absl::StatusOr<absl::Duration> since = ParseDuration(flags.since);
    if (!since.ok()) {
      return session.Fail(absl::InvalidArgumentError(
          fmt::format("--since: {}", std::string(since.status().message()))));
    }
    request.since_ms = absl::ToInt64Milliseconds(*since);
  }
  absl::StatusOr<Client*> client = session.client();
  if (!client.ok()) return session.Fail(client.status());
  absl::StatusOr<std::vector<protocols::AuditEntry>> entries = (*client)->ListAudit(request);
  if (!entries.ok()) return session.Fail(entries.status());
  if (session.json()) {
    nlohmann::json list = nlohmann::json::array();
    for (const auto& e : *entries) list.push_back(AuditEntryToJson(e));
    return session.PrintJson({{"entries", list}});
  }
  session.out() << RenderAuditTable(*entries);
  return 0;
}

}  // namespace

void AddAuditCommand(CLI::App& app, Command* chosen) {
  auto flags = std::make_shared<AuditFlags>();
  CLI::App* cmd = app.add_subcommand(
      "audit",
      "Admin: the coordinator's audit log, oldest first (TIME, WHO, ACTION, DETAIL): "
      "reclaims, releases, hand-overs, and refused reclaims, releases and worker "
      "registrations with the reason.");
  cmd->add_option("--since", flags->since, "Only entries from the last DURATION, e.g. 1h");
  cmd->add_option("--limit", flags->limit, "At most the newest N entries (default 100)")
      ->check(CLI::Range(1, 10000));
  cmd->callback([chosen, flags] {
    *chosen = [flags](Session& session) { return RunAudit(*flags, session); };
  });
}

}  // namespace sublet::client::cli

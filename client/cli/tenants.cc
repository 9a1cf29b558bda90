// `sublet tenants`: each tenant's quota, borrow limit, weight and max
// priority from the coordinator's config, and what it uses now: GPUs in use
// and borrowed beyond its quota, pending jobs and the GPUs they ask for, its
// weighted share (the order borrowers are admitted in) and GPU-seconds, in
// all and decayed by fair_share.half_life. A tenant sees its own row, an
// admin every tenant's.
#include <memory>

#include "client/cli/cli.h"

namespace sublet::client::cli {
namespace {

int RunTenants(Session& session) {
  absl::StatusOr<Client*> client = session.client();
  if (!client.ok()) return session.Fail(client.status());
  absl::StatusOr<protocols::TenantListReply> reply = (*client)->ListTenants();
  if (!reply.ok()) return session.Fail(reply.status());
  if (session.json()) return session.PrintJson(TenantsToJson(*reply));
  session.out() << RenderTenantsTable(*reply);
  return 0;
}

}  // namespace

void AddTenantsCommand(CLI::App& app, Command* chosen) {
  CLI::App* cmd = app.add_subcommand(
      "tenants",
      "Quotas and use per tenant (TENANT, QUOTA, BORROW-LIMIT, WEIGHT, MAX-PRIORITY, IN-USE, "
      "BORROWED, PENDING, SHARE, DECAYED-GPU-S, GPU-S): a tenant sees its own row, an admin "
      "all. SHARE is (in use / pool + decayed history) / weight: borrowers with the lowest "
      "go first.");
  cmd->callback([chosen] { *chosen = [](Session& session) { return RunTenants(session); }; });
}

}  // namespace sublet::client::cli

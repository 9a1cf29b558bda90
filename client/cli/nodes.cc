// `sublet nodes`.
#include "absl/time/clock.h"
#include "client/cli/cli.h"

namespace sublet::client::cli {
namespace {

int RunNodes(Session& session) {
  absl::StatusOr<Client*> client = session.client();
  if (!client.ok()) return session.Fail(client.status());
  absl::StatusOr<std::vector<protocols::NodeInfo>> nodes = (*client)->ListNodes();
  if (!nodes.ok()) return session.Fail(nodes.status());
  if (session.json()) {
    nlohmann::json list = nlohmann::json::array();
    for (const auto& node : *nodes) list.push_back(NodeToJson(node));
    return session.PrintJson({{"nodes", list}});
  }
  session.out() << RenderNodesTable(*nodes, absl::Now());
  return 0;
}

}  // namespace

void AddNodesCommand(CLI::App& app, Command* chosen) {
  CLI::App* nodes = app.add_subcommand(
      "nodes",
      "List the cluster's nodes: state (ready, reclaimed, draining, lost), GPUs, "
      "free GPUs, the jobs running there, address and last heartbeat.");
  nodes->callback([chosen] { *chosen = RunNodes; });
}

}  // namespace sublet::client::cli

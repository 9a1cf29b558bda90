#include "worker/runtime/process_groups.h"

#include <cstdlib>

#include "absl/strings/str_cat.h"
#include "collectives/store.h"
#include "common/status.h"

namespace sublet::worker {
namespace {

using collectives::Communicator;

// A world of one over a private loopback store.
absl::StatusOr<std::unique_ptr<Communicator>> SoloWorld(
    const collectives::CommunicatorOptions& options) {
  SUBLET_ASSIGN_OR_RETURN(std::shared_ptr<collectives::TcpStoreServer> server,
                          collectives::TcpStoreServer::Start("127.0.0.1", 0));
  SUBLET_ASSIGN_OR_RETURN(auto store,
                          collectives::TcpStore::Connect("127.0.0.1", server->port(),
                                                         absl::Now() + options.timeout, server));
  collectives::CommunicatorOptions solo = options;
  solo.backend = collectives::BackendKind::kHost;
  return collectives::CreateHostCommunicator(std::move(store), 0, 1, "local", solo);
}

absl::StatusOr<std::unique_ptr<Communicator>> World(
    const collectives::GetenvFn& getenv, const collectives::CommunicatorOptions& options) {
  auto info = collectives::RankInfoFromEnv(getenv);
  if (absl::IsFailedPrecondition(info.status())) return SoloWorld(options);
  if (!info.ok()) return info.status();
  return collectives::CreateCommunicator(*info, options);
}

}  // namespace

absl::StatusOr<ProcessGroups> CreateProcessGroups(const collectives::GetenvFn& getenv, int tp,
                                                  const collectives::CommunicatorOptions& options) {
  ProcessGroups g;
  SUBLET_ASSIGN_OR_RETURN(g.world, World(getenv, options));
  const int world = g.world->size(), rank = g.world->rank();
  if (tp < 1 || world % tp != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("--tp: ", tp, " does not divide the world size ", world));
  }
  g.tp_size = tp;
  g.dp_size = world / tp;
  g.tp_rank = rank % tp;
  g.dp_rank = rank / tp;
  SUBLET_ASSIGN_OR_RETURN(g.tp, g.world->Split(g.dp_rank, g.tp_rank));
  SUBLET_ASSIGN_OR_RETURN(g.dp, g.world->Split(g.tp_rank, g.dp_rank));
  SUBLET_ASSIGN_OR_RETURN(g.ckpt, g.world->Split(0, rank));
  return g;
}

}  // namespace sublet::worker

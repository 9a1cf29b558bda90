// The host backend: CPU collectives for ranks of one job.
//   - All ranks on one node (same node name): the node's shared segment.
//   - Several nodes with the same number L > 1 of ranks each: allreduce is
//     hierarchical (shared memory in the node, TCP ring across nodes per
//     local index); the other operations use the TCP ring over all ranks.
//   - Otherwise: a pipelined TCP ring over all ranks.
//   - Send/recv always go over the group's TCP mesh.
// A node is what the rank says it is (SUBLET_NODE_NAME), so two workers on
// one host are two nodes and talk TCP.
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "collectives/communicator.h"
#include "collectives/internal/backend.h"
#include "collectives/store.h"

namespace sublet::collectives::host {

struct HostGroup {
  std::shared_ptr<Store> store;  // scoped to this group (a PrefixStore)
  int rank = 0;
  int size = 1;
  std::string node;  // ranks with equal node names share memory
  std::string secret;  // the job secret (32 raw bytes) the TCP mesh proves; empty: none
};

absl::StatusOr<std::unique_ptr<internal::Backend>> CreateHostBackend(
    HostGroup group, const CommunicatorOptions& options, absl::Time deadline);

}  // namespace sublet::collectives::host

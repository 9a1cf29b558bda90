// Creating a communicator for this process: who am I (rank, size, node) and
// how do I find the others. One program runs unchanged under the Sublet
// worker and under mpirun:
//   - Sublet worker: SUBLET_RANK, SUBLET_WORLD_SIZE, SUBLET_NODE_NAME and
//     SUBLET_RENDEZVOUS=host:port. Rank 0 serves the rendezvous store on that
//     port; everyone connects to it.
//   - mpirun: OMPI_COMM_WORLD_RANK / _SIZE; the node is the host name (or
//     SUBLET_NODE_NAME if set). Rank 0 serves the store on an ephemeral port
//     and broadcasts its address with MPI.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "collectives/communicator.h"
#include "collectives/store.h"

namespace sublet::collectives {

struct RankInfo {
  int rank = 0;
  int size = 1;
  std::string node;
  std::string rendezvous;  // host:port; empty under mpirun without SUBLET_RENDEZVOUS
  bool under_mpi = false;
};

// Reads the environment through `getenv` (tests pass a map lookup).
using GetenvFn = std::function<const char*(const char*)>;
absl::StatusOr<RankInfo> RankInfoFromEnv(const GetenvFn& getenv);

// Rendezvous and backend selection (BackendKind::kAuto: nccl when a CUDA
// device exists, else host).
absl::StatusOr<std::unique_ptr<Communicator>> CreateCommunicator(const RankInfo& info,
                                                                 const CommunicatorOptions& options);

// A host-backend communicator over an existing store (tests, benchmarks).
absl::StatusOr<std::unique_ptr<Communicator>> CreateHostCommunicator(
    std::shared_ptr<Store> store, int rank, int size, const std::string& node,
    const CommunicatorOptions& options);

}  // namespace sublet::collectives

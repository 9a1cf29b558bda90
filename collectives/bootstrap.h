// Creating a communicator for this process: who am I (rank, size, node) and
// how do I find the others. One program runs unchanged under the Sublet
// worker and under mpirun:
//   - Sublet worker: SUBLET_RANK, SUBLET_WORLD_SIZE, SUBLET_NODE_NAME and
//     SUBLET_RENDEZVOUS=host:port. Rank 0 serves the rendezvous store on that
//     port; everyone connects to it.
//   - mpirun: OMPI_COMM_WORLD_RANK / _SIZE; the node is the host name (or
//     SUBLET_NODE_NAME if set). Rank 0 serves the store on an ephemeral port
//     and broadcasts its address with MPI.
// SUBLET_JOB_SECRET (64 lowercase hex digits, one value per job attempt, put
// there by the Sublet worker) makes the store and the host backend's TCP mesh
// admit only peers that prove it (store.h, host/tcp_mesh.h); unset or empty,
// anyone who reaches their ports is admitted (plain mpirun runs).
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <string_view>

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
  // SUBLET_JOB_SECRET decoded: 32 raw bytes, or empty for none. Never put
  // it in a message or a log.
  std::string secret;
};

// Reads the environment through `getenv` (tests pass a map lookup).
using GetenvFn = std::function<const char*(const char*)>;
absl::StatusOr<RankInfo> RankInfoFromEnv(const GetenvFn& getenv);

// Rendezvous and backend selection (BackendKind::kAuto: nccl when a CUDA
// device exists, else host).
absl::StatusOr<std::unique_ptr<Communicator>> CreateCommunicator(const RankInfo& info,
                                                                 const CommunicatorOptions& options);

// A host-backend communicator over an existing store (tests, benchmarks);
// `secret` (RankInfo::secret) is what its TCP mesh proves.
absl::StatusOr<std::unique_ptr<Communicator>> CreateHostCommunicator(
    std::shared_ptr<Store> store, int rank, int size, const std::string& node,
    const CommunicatorOptions& options, std::string_view secret = {});

}  // namespace sublet::collectives

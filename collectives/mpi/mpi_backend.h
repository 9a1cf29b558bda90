// The mpi backend: Open MPI's collectives behind the Backend interface.
// Operations are started non-blocking (MPI_Iallreduce, ...) and polled, so a
// missing peer turns into DeadlineExceeded instead of a hang; MPI cannot say
// which peer is missing, and the message says so. bf16 and f16 use MPI user
// operators built on internal/reduce.h. Counts above INT_MAX are refused.
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "collectives/internal/backend.h"

namespace sublet::collectives::mpi {

// Initialises MPI (MPI_THREAD_MULTIPLE requested) if nobody has, and arranges
// MPI_Finalize at exit. Idempotent.
absl::Status EnsureMpi();

// A backend over a duplicate of MPI_COMM_WORLD.
absl::StatusOr<std::unique_ptr<internal::Backend>> CreateMpiBackend();

// Rank 0's `value` on every rank of MPI_COMM_WORLD (used to hand out the
// rendezvous store's address under mpirun).
absl::StatusOr<std::string> BroadcastFromRankZero(const std::string& value);

}  // namespace sublet::collectives::mpi

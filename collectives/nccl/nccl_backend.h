// The nccl backend: NCCL communicators bootstrapped through the rendezvous
// store (rank 0 publishes the ncclUniqueId). Buffers are device pointers.
// Built only when nvcc is found (SUBLET_HAVE_CUDA); otherwise, and at run time
// on a machine without a CUDA device, creation fails with FailedPrecondition
// saying why.
#pragma once

#include <memory>

#include "absl/status/statusor.h"
#include "collectives/communicator.h"
#include "collectives/internal/backend.h"
#include "collectives/store.h"

namespace sublet::collectives::nccl {

// Number of CUDA devices, or FailedPrecondition naming why there are none
// ("not built with CUDA", "cudaGetDeviceCount: ...").
absl::StatusOr<int> CudaDeviceCount();

absl::StatusOr<std::unique_ptr<internal::Backend>> CreateNcclBackend(
    std::shared_ptr<Store> store, int rank, int size, const CommunicatorOptions& options,
    absl::Time deadline);

}  // namespace sublet::collectives::nccl

// Stand-in for nccl_backend.cu when nvcc was not found at configure time.
#include "collectives/nccl/nccl_backend.h"

namespace sublet::collectives::nccl {

absl::StatusOr<int> CudaDeviceCount() {
  return absl::FailedPreconditionError(
      "nccl backend: not built (nvcc was not found when Sublet was configured)");
}

absl::StatusOr<std::unique_ptr<internal::Backend>> CreateNcclBackend(
    std::shared_ptr<Store>, int, int, const CommunicatorOptions&, absl::Time) {
  return CudaDeviceCount().status();
}

}  // namespace sublet::collectives::nccl

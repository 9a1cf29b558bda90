#include "collectives/cuda/kernels.h"

#include <cuda_runtime.h>

#include "absl/strings/str_cat.h"

namespace sublet::collectives::cuda {
namespace internal {
cudaError_t LaunchPack(const PackEntry* table, int entries, size_t max_bytes, void* flat,
                       bool unpack, cudaStream_t stream);
cudaError_t LaunchReduceAndScale(void* dst, const void* a, const void* b, size_t n, DataType t,
                                 ReduceOp op, int avg, cudaStream_t s);
}  // namespace internal

namespace {
absl::Status Check(const char* what, cudaError_t e) {
  if (e == cudaSuccess) return absl::OkStatus();
  return absl::InternalError(absl::StrCat(what, ": ", cudaGetErrorString(e)));
}
}  // namespace

absl::Status Pack(const PackEntry* table, int entries, size_t max_bytes, void* flat, void* stream) {
  return Check("pack", internal::LaunchPack(table, entries, max_bytes, flat, false,
                                            static_cast<cudaStream_t>(stream)));
}

absl::Status Unpack(const PackEntry* table, int entries, size_t max_bytes, const void* flat,
                    void* stream) {
  return Check("unpack", internal::LaunchPack(table, entries, max_bytes, const_cast<void*>(flat),
                                              true, static_cast<cudaStream_t>(stream)));
}

absl::Status ReduceAndScale(void* dst, const void* a, const void* b, size_t count, DataType type,
                            ReduceOp op, int average_over, void* stream) {
  return Check("reduce_and_scale",
               internal::LaunchReduceAndScale(dst, a, b, count, type, op, average_over,
                                              static_cast<cudaStream_t>(stream)));
}

}  // namespace sublet::collectives::cuda

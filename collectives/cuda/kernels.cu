// Device code for kernels.h. Kept in one translation unit; the launchers
// return cudaError_t so that this file needs no abseil (kernels.cc wraps).
#include <cuda_runtime.h>

#include <cstdint>

#include "collectives/cuda/pack_entry.h"
#include "collectives/types.h"
#include "collectives/internal/numeric.h"

namespace sublet::collectives::cuda {
namespace internal {

constexpr int kThreads = 256;

__global__ void PackKernel(const PackEntry* table, char* flat, bool unpack) {
  const PackEntry e = table[blockIdx.y];
  char* dst = unpack ? static_cast<char*>(e.gradient) : flat + e.offset;
  const char* src = unpack ? flat + e.offset : static_cast<const char*>(e.gradient);
  for (size_t i = blockIdx.x * blockDim.x + threadIdx.x; i < e.bytes;
       i += static_cast<size_t>(gridDim.x) * blockDim.x) {
    dst[i] = src[i];
  }
}

cudaError_t LaunchPack(const PackEntry* table, int entries, size_t max_bytes, void* flat,
                       bool unpack, cudaStream_t stream) {
  if (entries == 0 || max_bytes == 0) return cudaSuccess;
  unsigned blocks = static_cast<unsigned>((max_bytes + kThreads - 1) / kThreads);
  if (blocks > 1024) blocks = 1024;
  PackKernel<<<dim3(blocks, entries), kThreads, 0, stream>>>(table, static_cast<char*>(flat),
                                                              unpack);
  return cudaGetLastError();
}

template <typename T, typename Op>
__global__ void ReduceScaleKernel(T* dst, const T* a, const T* b, size_t n, int average_over) {
  Op op;
  for (size_t i = blockIdx.x * blockDim.x + threadIdx.x; i < n;
       i += static_cast<size_t>(gridDim.x) * blockDim.x) {
    T v = Combine(a[i], b[i], op);
    dst[i] = average_over > 1 ? ScaleForAverage(v, average_over) : v;
  }
}

template <typename T>
cudaError_t ForOp(void* dst, const void* a, const void* b, size_t n, ReduceOp op, int avg,
                  cudaStream_t s) {
  unsigned blocks = static_cast<unsigned>((n + kThreads - 1) / kThreads);
  if (blocks > 4096) blocks = 4096;
  if (blocks == 0) return cudaSuccess;
  T* d = static_cast<T*>(dst);
  const T* x = static_cast<const T*>(a);
  const T* y = static_cast<const T*>(b);
  switch (op) {
    case ReduceOp::kSum:
    case ReduceOp::kAvg: ReduceScaleKernel<T, SumOp><<<blocks, kThreads, 0, s>>>(d, x, y, n, avg); break;
    case ReduceOp::kMax: ReduceScaleKernel<T, MaxOp><<<blocks, kThreads, 0, s>>>(d, x, y, n, avg); break;
    case ReduceOp::kMin: ReduceScaleKernel<T, MinOp><<<blocks, kThreads, 0, s>>>(d, x, y, n, avg); break;
  }
  return cudaGetLastError();
}

cudaError_t LaunchReduceAndScale(void* dst, const void* a, const void* b, size_t n, DataType t,
                                 ReduceOp op, int avg, cudaStream_t s) {
  switch (t) {
    case DataType::kF32: return ForOp<float>(dst, a, b, n, op, avg, s);
    case DataType::kF64: return ForOp<double>(dst, a, b, n, op, avg, s);
    case DataType::kBF16: return ForOp<Bf16>(dst, a, b, n, op, avg, s);
    case DataType::kF16: return ForOp<F16>(dst, a, b, n, op, avg, s);
    case DataType::kI32: return ForOp<int32_t>(dst, a, b, n, op, avg, s);
    case DataType::kI64: return ForOp<int64_t>(dst, a, b, n, op, avg, s);
  }
  return cudaErrorInvalidValue;
}

}  // namespace internal
}  // namespace sublet::collectives::cuda

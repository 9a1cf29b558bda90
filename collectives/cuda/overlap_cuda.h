// CUDA twins of collectives/overlap/: the same plans (overlap/plan.h,
// numeric.h ChunkOf) over device buffers, a communicator whose backend is
// nccl, cuBLAS GEMMs on `compute` and the pack/unpack kernels. They compile
// in CI; the host versions are what the tests run.
#pragma once

#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "collectives/communicator.h"
#include "collectives/cuda/pack_entry.h"
#include "collectives/overlap/bucketed_allreduce.h"
#include "collectives/overlap/collective_matmul.h"
#include "collectives/overlap/plan.h"

namespace sublet::collectives::cuda {

struct CudaContext {
  void* compute_stream;  // cudaStream_t the GEMMs and kernels run on
  void* cublas;          // cublasHandle_t bound to compute_stream
};

// As overlap::BucketedAllReduce, with gradients in device memory. MarkReady
// packs the gradient with the pack kernel; a full bucket's all-reduce starts
// once its packs have completed; Finish unpacks with the unpack kernel.
class CudaBucketedAllReduce {
 public:
  CudaBucketedAllReduce(Communicator& comm, std::vector<overlap::BucketedAllReduce::Gradient> grads,
                        overlap::BucketedAllReduceOptions options, CudaContext ctx);
  ~CudaBucketedAllReduce();
  absl::Status MarkReady(size_t index);
  absl::Status Finish();

 private:
  absl::Status LaunchReadyBuckets();

  Communicator& comm_;
  std::vector<overlap::BucketedAllReduce::Gradient> grads_;
  overlap::BucketedAllReduceOptions options_;
  CudaContext ctx_;
  overlap::BucketPlan plan_;
  std::vector<void*> flat_;           // device buffers, one per bucket
  std::vector<PackEntry*> tables_;    // device tables, one per bucket
  std::vector<size_t> max_bytes_;
  std::vector<size_t> pending_;
  std::vector<WorkPtr> work_;
  size_t next_launch_ = 0;
};

absl::Status CudaAllGatherMatmul(Communicator& comm, const float* x_local, int64_t m_local,
                                 int64_t k, const float* w, int64_t n, float* y,
                                 const overlap::CollectiveMatmulOptions& options, CudaContext ctx);

absl::Status CudaMatmulReduceScatter(Communicator& comm, const float* x, int64_t m,
                                     int64_t k_local, const float* w, int64_t n, float* y,
                                     const overlap::CollectiveMatmulOptions& options,
                                     CudaContext ctx);

}  // namespace sublet::collectives::cuda

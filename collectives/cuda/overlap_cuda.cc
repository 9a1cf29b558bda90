#include "collectives/cuda/overlap_cuda.h"

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include "absl/strings/str_cat.h"
#include "collectives/cuda/kernels.h"
#include "collectives/internal/numeric.h"
#include "common/status.h"

namespace sublet::collectives::cuda {
namespace {

absl::Status Cuda(const char* what, cudaError_t e) {
  if (e == cudaSuccess) return absl::OkStatus();
  return absl::InternalError(absl::StrCat(what, ": ", cudaGetErrorString(e)));
}

cudaStream_t Stream(const CudaContext& c) { return static_cast<cudaStream_t>(c.compute_stream); }

// C (rows x n) = A (rows x k) * B (k x n), row-major, as the column-major
// C^T = B^T A^T cuBLAS computes.
absl::Status Gemm(const CudaContext& c, const float* a, const float* b, float* out, int64_t rows,
                  int64_t k, int64_t n) {
  if (rows == 0 || n == 0) return absl::OkStatus();
  const float one = 1, zero = 0;
  cublasStatus_t s = cublasSgemm(static_cast<cublasHandle_t>(c.cublas), CUBLAS_OP_N, CUBLAS_OP_N,
                                 static_cast<int>(n), static_cast<int>(rows), static_cast<int>(k),
                                 &one, b, static_cast<int>(n), a, static_cast<int>(k), &zero, out,
                                 static_cast<int>(n));
  if (s != CUBLAS_STATUS_SUCCESS) return absl::InternalError(absl::StrCat("cublasSgemm: ", s));
  return absl::OkStatus();
}

}  // namespace

CudaBucketedAllReduce::CudaBucketedAllReduce(
    Communicator& comm, std::vector<overlap::BucketedAllReduce::Gradient> grads,
    overlap::BucketedAllReduceOptions options, CudaContext ctx)
    : comm_(comm), grads_(std::move(grads)), options_(options), ctx_(ctx) {
  std::vector<size_t> counts;
  for (const auto& g : grads_) counts.push_back(g.count);
  const size_t esz = DataTypeSize(options_.type);
  plan_ = overlap::PlanBuckets(counts, esz, options_.first_bucket_bytes, options_.bucket_bytes);
  for (size_t b = 0; b < plan_.buckets.size(); ++b) {
    std::vector<PackEntry> table;
    size_t biggest = 0;
    for (size_t i : plan_.buckets[b]) {
      table.push_back({grads_[i].data, grads_[i].count * esz, plan_.offset_of[i] * esz});
      biggest = std::max(biggest, grads_[i].count * esz);
    }
    void* flat = nullptr;
    PackEntry* dev = nullptr;
    cudaMalloc(&flat, std::max<size_t>(1, plan_.bucket_elems[b] * esz));
    cudaMalloc(reinterpret_cast<void**>(&dev), table.size() * sizeof(PackEntry));
    cudaMemcpy(dev, table.data(), table.size() * sizeof(PackEntry), cudaMemcpyHostToDevice);
    flat_.push_back(flat);
    tables_.push_back(dev);
    max_bytes_.push_back(biggest);
    pending_.push_back(plan_.buckets[b].size());
  }
  work_.resize(plan_.buckets.size());
}

CudaBucketedAllReduce::~CudaBucketedAllReduce() {
  for (void* p : flat_) cudaFree(p);
  for (PackEntry* t : tables_) cudaFree(t);
}

absl::Status CudaBucketedAllReduce::MarkReady(size_t index) {
  if (index >= grads_.size()) {
    return absl::InvalidArgumentError(absl::StrCat("bucketed allreduce: gradient ", index));
  }
  const size_t b = plan_.bucket_of[index];
  size_t row = 0;
  while (plan_.buckets[b][row] != index) ++row;
  const size_t bytes = grads_[index].count * DataTypeSize(options_.type);
  SUBLET_RETURN_IF_ERROR(Pack(tables_[b] + row, 1, bytes, flat_[b], ctx_.compute_stream));
  if (--pending_[b] == 0) return LaunchReadyBuckets();
  return absl::OkStatus();
}

absl::Status CudaBucketedAllReduce::LaunchReadyBuckets() {
  while (next_launch_ < plan_.buckets.size() && pending_[next_launch_] == 0) {
    // The bucket's packs must be complete before NCCL reads it.
    SUBLET_RETURN_IF_ERROR(Cuda("bucket pack", cudaStreamSynchronize(Stream(ctx_))));
    work_[next_launch_] = comm_.AllReduceAsync(flat_[next_launch_], flat_[next_launch_],
                                               plan_.bucket_elems[next_launch_], options_.type,
                                               options_.op);
    ++next_launch_;
  }
  return absl::OkStatus();
}

absl::Status CudaBucketedAllReduce::Finish() {
  if (next_launch_ != plan_.buckets.size()) {
    return absl::FailedPreconditionError("bucketed allreduce: Finish before every gradient was ready");
  }
  for (size_t b = 0; b < plan_.buckets.size(); ++b) {
    SUBLET_RETURN_IF_ERROR(work_[b]->Wait());
    SUBLET_RETURN_IF_ERROR(Unpack(tables_[b], static_cast<int>(plan_.buckets[b].size()),
                                  max_bytes_[b], flat_[b], ctx_.compute_stream));
    pending_[b] = plan_.buckets[b].size();
  }
  next_launch_ = 0;
  return Cuda("bucket unpack", cudaStreamSynchronize(Stream(ctx_)));
}

absl::Status CudaAllGatherMatmul(Communicator& comm, const float* x_local, int64_t m_local,
                                 int64_t k, const float* w, int64_t n, float* y,
                                 const overlap::CollectiveMatmulOptions& options, CudaContext ctx) {
  if (options.chunks < 1) return absl::InvalidArgumentError("collective matmul: chunks < 1");
  const int p = comm.size();
  const size_t c = static_cast<size_t>(options.chunks);
  std::vector<float*> gathered(c, nullptr);
  std::vector<WorkPtr> work(c);
  auto start = [&](size_t j) -> absl::Status {
    Range r = ChunkOf(static_cast<size_t>(m_local), c, j, 1);
    SUBLET_RETURN_IF_ERROR(Cuda("cudaMalloc", cudaMalloc(reinterpret_cast<void**>(&gathered[j]),
                                                         std::max<size_t>(1, r.size() * k * p * 4))));
    work[j] = comm.AllGatherAsync(x_local + r.begin * k, gathered[j], r.size() * k, DataType::kF32);
    return absl::OkStatus();
  };
  absl::Status status = start(0);
  for (size_t j = 0; j < c && status.ok(); ++j) {
    if (j + 1 < c) status = start(j + 1);
    if (status.ok()) status = work[j]->Wait();
    Range r = ChunkOf(static_cast<size_t>(m_local), c, j, 1);
    for (int q = 0; q < p && status.ok(); ++q) {  // GEMMs queue on compute while chunk j+1 moves
      status = Gemm(ctx, gathered[j] + q * r.size() * k, w, y + (q * m_local + r.begin) * n,
                    static_cast<int64_t>(r.size()), k, n);
    }
  }
  for (WorkPtr& w_ : work) {
    if (w_) w_->Wait().IgnoreError();
  }
  cudaStreamSynchronize(Stream(ctx));
  for (float* g : gathered) cudaFree(g);
  return status;
}

absl::Status CudaMatmulReduceScatter(Communicator& comm, const float* x, int64_t m,
                                     int64_t k_local, const float* w, int64_t n, float* y,
                                     const overlap::CollectiveMatmulOptions& options,
                                     CudaContext ctx) {
  const int p = comm.size();
  if (options.chunks < 1 || m % p != 0) {
    return absl::InvalidArgumentError("matmul reduce-scatter: chunks < 1 or m not a multiple of p");
  }
  const int64_t block = m / p;
  const size_t c = static_cast<size_t>(options.chunks);
  std::vector<float*> partial(c, nullptr);
  std::vector<WorkPtr> work(c);
  absl::Status status;
  for (size_t j = 0; j < c && status.ok(); ++j) {
    Range r = ChunkOf(static_cast<size_t>(block), c, j, 1);
    status = Cuda("cudaMalloc", cudaMalloc(reinterpret_cast<void**>(&partial[j]),
                                           std::max<size_t>(1, r.size() * n * p * 4)));
    for (int q = 0; q < p && status.ok(); ++q) {
      status = Gemm(ctx, x + (q * block + r.begin) * k_local, w, partial[j] + q * r.size() * n,
                    static_cast<int64_t>(r.size()), k_local, n);
    }
    if (status.ok()) status = Cuda("gemm", cudaStreamSynchronize(Stream(ctx)));
    if (status.ok()) {
      work[j] = comm.ReduceScatterAsync(partial[j], y + r.begin * n, r.size() * n, DataType::kF32,
                                        ReduceOp::kSum);
    }
  }
  for (WorkPtr& w_ : work) {
    if (!w_) continue;
    absl::Status s = w_->Wait();
    if (status.ok()) status = s;
  }
  for (float* q : partial) cudaFree(q);
  return status;
}

}  // namespace sublet::collectives::cuda

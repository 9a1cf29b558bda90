// NCCL behind the Backend interface. Compiled (with the CUDA runtime and
// NCCL headers) only when the CUDA toolkit is found; see nccl_backend.h.
//
// Each operation is enqueued on the backend's stream and then polled with
// cudaStreamQuery until done or until the deadline; at the deadline the
// communicator is aborted (ncclCommAbort), which is what makes a missing peer
// a DeadlineExceeded instead of a hang. NCCL cannot say which peer is
// missing; the message says so.
#include "collectives/nccl/nccl_backend.h"

#include <cuda_runtime.h>
#include <nccl.h>
#include <sched.h>

#include <string>

#include "absl/strings/str_cat.h"
#include "common/status.h"

namespace sublet::collectives::nccl {
namespace {

using internal::OpContext;

absl::Status Nccl(const char* op, ncclResult_t r) {
  if (r == ncclSuccess) return absl::OkStatus();
  return absl::InternalError(absl::StrCat(op, ": ", ncclGetErrorString(r)));
}

absl::Status Cuda(const char* op, cudaError_t e) {
  if (e == cudaSuccess) return absl::OkStatus();
  return absl::InternalError(absl::StrCat(op, ": ", cudaGetErrorString(e)));
}

ncclDataType_t NcclType(DataType t) {
  switch (t) {
    case DataType::kF32: return ncclFloat32;
    case DataType::kF64: return ncclFloat64;
    case DataType::kBF16: return ncclBfloat16;
    case DataType::kF16: return ncclFloat16;
    case DataType::kI32: return ncclInt32;
    case DataType::kI64: return ncclInt64;
  }
  return ncclInt8;
}

ncclRedOp_t NcclOp(ReduceOp op) {
  switch (op) {
    case ReduceOp::kSum: return ncclSum;
    case ReduceOp::kAvg: return ncclAvg;
    case ReduceOp::kMax: return ncclMax;
    case ReduceOp::kMin: return ncclMin;
  }
  return ncclSum;
}

class NcclBackend final : public internal::Backend {
 public:
  NcclBackend(ncclComm_t comm, cudaStream_t stream, int rank, int size)
      : comm_(comm), stream_(stream), rank_(rank), size_(size) {}
  ~NcclBackend() override {
    ncclCommDestroy(comm_);
    cudaStreamDestroy(stream_);
    if (token_) cudaFree(token_);
  }
  int rank() const override { return rank_; }
  int size() const override { return size_; }
  std::string name() const override { return "nccl"; }

  absl::Status AllReduce(const OpContext& ctx, const void* in, void* out, size_t count,
                         DataType type, ReduceOp op) override {
    SUBLET_RETURN_IF_ERROR(Nccl(ctx.op, ncclAllReduce(in, out, count, NcclType(type), NcclOp(op),
                                                      comm_, stream_)));
    return Await(ctx);
  }
  absl::Status ReduceScatter(const OpContext& ctx, const void* in, void* out, size_t count,
                             DataType type, ReduceOp op) override {
    SUBLET_RETURN_IF_ERROR(Nccl(ctx.op, ncclReduceScatter(in, out, count, NcclType(type),
                                                          NcclOp(op), comm_, stream_)));
    return Await(ctx);
  }
  absl::Status AllGather(const OpContext& ctx, const void* in, void* out, size_t count,
                         DataType type) override {
    SUBLET_RETURN_IF_ERROR(
        Nccl(ctx.op, ncclAllGather(in, out, count, NcclType(type), comm_, stream_)));
    return Await(ctx);
  }
  absl::Status Broadcast(const OpContext& ctx, void* buf, size_t count, DataType type,
                         int root) override {
    SUBLET_RETURN_IF_ERROR(
        Nccl(ctx.op, ncclBroadcast(buf, buf, count, NcclType(type), root, comm_, stream_)));
    return Await(ctx);
  }
  absl::Status Send(const OpContext& ctx, const void* buf, size_t bytes, int peer) override {
    SUBLET_RETURN_IF_ERROR(Nccl(ctx.op, ncclSend(buf, bytes, ncclInt8, peer, comm_, stream_)));
    return Await(ctx);
  }
  absl::Status Recv(const OpContext& ctx, void* buf, size_t bytes, int peer) override {
    SUBLET_RETURN_IF_ERROR(Nccl(ctx.op, ncclRecv(buf, bytes, ncclInt8, peer, comm_, stream_)));
    return Await(ctx);
  }
  absl::Status Barrier(const OpContext& ctx) override {
    if (!token_) SUBLET_RETURN_IF_ERROR(Cuda(ctx.op, cudaMalloc(&token_, sizeof(int))));
    return AllReduce(ctx, token_, token_, 1, DataType::kI32, ReduceOp::kSum);
  }
  absl::StatusOr<std::unique_ptr<internal::Backend>> Split(const OpContext& ctx, int color,
                                                           int key) override {
    ncclComm_t child = nullptr;
    SUBLET_RETURN_IF_ERROR(Nccl(ctx.op, ncclCommSplit(comm_, color < 0 ? NCCL_SPLIT_NOCOLOR : color,
                                                      key, &child, nullptr)));
    if (child == nullptr) return std::unique_ptr<internal::Backend>();
    int r = 0, n = 0;
    ncclCommUserRank(child, &r);
    ncclCommCount(child, &n);
    cudaStream_t stream;
    SUBLET_RETURN_IF_ERROR(Cuda(ctx.op, cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking)));
    return std::unique_ptr<internal::Backend>(new NcclBackend(child, stream, r, n));
  }

 private:
  // Polls the stream; aborts the communicator at the deadline.
  absl::Status Await(const OpContext& ctx) {
    for (uint32_t spins = 0;; ++spins) {
      cudaError_t e = cudaStreamQuery(stream_);
      if (e == cudaSuccess) return absl::OkStatus();
      if (e != cudaErrorNotReady) return Cuda(ctx.op, e);
      ncclResult_t async = ncclSuccess;
      ncclCommGetAsyncError(comm_, &async);
      if (async != ncclSuccess && async != ncclInProgress) return Nccl(ctx.op, async);
      if (spins > 1000) sched_yield();
      if ((spins & 1023) == 1023 && absl::Now() >= ctx.deadline) {
        ncclCommAbort(comm_);
        return absl::DeadlineExceededError(absl::StrCat(
            ctx.op, ": timed out; some peer did not take part (NCCL does not say which rank); "
                    "communicator aborted"));
      }
    }
  }

  ncclComm_t comm_;
  cudaStream_t stream_;
  int rank_;
  int size_;
  void* token_ = nullptr;
};

}  // namespace

absl::StatusOr<int> CudaDeviceCount() {
  int n = 0;
  cudaError_t e = cudaGetDeviceCount(&n);
  if (e != cudaSuccess) {
    return absl::FailedPreconditionError(absl::StrCat(
        "nccl backend: no CUDA device (cudaGetDeviceCount: ", cudaGetErrorString(e), ")"));
  }
  if (n == 0) {
    return absl::FailedPreconditionError("nccl backend: no CUDA device (cudaGetDeviceCount: 0)");
  }
  return n;
}

// Bootstrap: rank 0 makes the unique id and publishes it in the store; every
// rank picks device rank % devices and joins with ncclCommInitRank.
absl::StatusOr<std::unique_ptr<internal::Backend>> CreateNcclBackend(
    std::shared_ptr<Store> store, int rank, int size, const CommunicatorOptions& options,
    absl::Time deadline) {
  SUBLET_ASSIGN_OR_RETURN(int devices, CudaDeviceCount());
  SUBLET_RETURN_IF_ERROR(Cuda("nccl init", cudaSetDevice(rank % devices)));
  ncclUniqueId id;
  if (rank == 0) {
    SUBLET_RETURN_IF_ERROR(Nccl("nccl init", ncclGetUniqueId(&id)));
    SUBLET_RETURN_IF_ERROR(store->Set("id", std::string(id.internal, sizeof(id.internal))));
  } else {
    SUBLET_ASSIGN_OR_RETURN(std::string got, store->Get("id", deadline));
    if (got.size() != sizeof(id.internal)) return absl::DataLossError("nccl init: bad unique id");
    std::copy(got.begin(), got.end(), id.internal);
  }
  ncclComm_t comm;
  SUBLET_RETURN_IF_ERROR(Nccl("nccl init", ncclCommInitRank(&comm, size, id, rank)));
  cudaStream_t stream;
  SUBLET_RETURN_IF_ERROR(Cuda("nccl init", cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking)));
  return std::unique_ptr<internal::Backend>(new NcclBackend(comm, stream, rank, size));
}

}  // namespace sublet::collectives::nccl

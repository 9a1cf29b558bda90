#include "collectives/mpi/mpi_backend.h"

#include <mpi.h>
#include <sched.h>

#include <climits>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "absl/strings/str_cat.h"
#include "collectives/internal/reduce.h"
#include "common/status.h"

namespace sublet::collectives::mpi {
namespace {

using internal::OpContext;

void FinalizeAtExit() {
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (!finalized) MPI_Finalize();
}

absl::Status MpiError(const char* op, const char* call, int rc) {
  char msg[MPI_MAX_ERROR_STRING] = {};
  int len = 0;
  MPI_Error_string(rc, msg, &len);
  return absl::InternalError(absl::StrCat(op, ": ", call, ": ", msg));
}

// Polls `req` until it completes or the deadline passes.
absl::Status Await(const OpContext& ctx, MPI_Request* req) {
  for (uint32_t spins = 0;; ++spins) {
    int done = 0;
    int rc = MPI_Test(req, &done, MPI_STATUS_IGNORE);
    if (rc != MPI_SUCCESS) return MpiError(ctx.op, "MPI_Test", rc);
    if (done) return absl::OkStatus();
    if (spins > 1000) sched_yield();
    if ((spins & 1023) == 1023 && absl::Now() >= ctx.deadline) {
      return absl::DeadlineExceededError(absl::StrCat(
          ctx.op, ": timed out; some peer did not take part (MPI does not say which rank)"));
    }
  }
}

MPI_Datatype MpiType(DataType t) {
  switch (t) {
    case DataType::kF32: return MPI_FLOAT;
    case DataType::kF64: return MPI_DOUBLE;
    case DataType::kBF16: return MPI_UINT16_T;
    case DataType::kF16: return MPI_UINT16_T;
    case DataType::kI32: return MPI_INT32_T;
    case DataType::kI64: return MPI_INT64_T;
  }
  return MPI_BYTE;
}

template <DataType T, ReduceOp O>
void UserReduce(void* in, void* inout, int* len, MPI_Datatype*) {
  internal::ReduceInto(inout, in, static_cast<size_t>(*len), T, O);
}

// Native operators for native types; user operators for the half types.
class Ops {
 public:
  Ops() {
    Make<DataType::kBF16>(0);
    Make<DataType::kF16>(1);
  }
  ~Ops() {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (finalized) return;
    for (auto& row : user_) {
      for (MPI_Op& op : row) MPI_Op_free(&op);
    }
  }
  MPI_Op Get(DataType t, ReduceOp op) const {
    if (t == DataType::kBF16 || t == DataType::kF16) {
      return user_[t == DataType::kF16][static_cast<int>(op)];
    }
    switch (op) {
      case ReduceOp::kSum:
      case ReduceOp::kAvg: return MPI_SUM;
      case ReduceOp::kMax: return MPI_MAX;
      case ReduceOp::kMin: return MPI_MIN;
    }
    return MPI_SUM;
  }

 private:
  template <DataType T>
  void Make(int row) {
    MPI_Op_create(&UserReduce<T, ReduceOp::kSum>, 1, &user_[row][0]);
    MPI_Op_create(&UserReduce<T, ReduceOp::kSum>, 1, &user_[row][1]);
    MPI_Op_create(&UserReduce<T, ReduceOp::kMax>, 1, &user_[row][2]);
    MPI_Op_create(&UserReduce<T, ReduceOp::kMin>, 1, &user_[row][3]);
  }
  MPI_Op user_[2][4];
};

absl::Status CheckCount(const char* op, size_t count) {
  if (count <= static_cast<size_t>(INT_MAX)) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(op, ": mpi backend handles at most INT_MAX elements"));
}

class MpiBackend final : public internal::Backend {
 public:
  explicit MpiBackend(MPI_Comm comm) : comm_(comm) {
    MPI_Comm_rank(comm_, &rank_);
    MPI_Comm_size(comm_, &size_);
  }
  ~MpiBackend() override {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (!finalized) MPI_Comm_free(&comm_);
  }
  int rank() const override { return rank_; }
  int size() const override { return size_; }
  std::string name() const override { return "mpi"; }

  absl::Status AllReduce(const OpContext& ctx, const void* in, void* out, size_t count,
                         DataType type, ReduceOp op) override {
    SUBLET_RETURN_IF_ERROR(CheckCount(ctx.op, count));
    MPI_Request req;
    int rc = MPI_Iallreduce(in == out ? MPI_IN_PLACE : in, out, static_cast<int>(count),
                            MpiType(type), ops_.Get(type, op), comm_, &req);
    if (rc != MPI_SUCCESS) return MpiError(ctx.op, "MPI_Iallreduce", rc);
    SUBLET_RETURN_IF_ERROR(Await(ctx, &req));
    if (op == ReduceOp::kAvg) internal::ScaleForAverage(out, count, type, size_);
    return absl::OkStatus();
  }

  absl::Status ReduceScatter(const OpContext& ctx, const void* in, void* out, size_t count,
                             DataType type, ReduceOp op) override {
    SUBLET_RETURN_IF_ERROR(CheckCount(ctx.op, count * size_));
    MPI_Request req;
    int rc = MPI_Ireduce_scatter_block(in, out, static_cast<int>(count), MpiType(type),
                                       ops_.Get(type, op), comm_, &req);
    if (rc != MPI_SUCCESS) return MpiError(ctx.op, "MPI_Ireduce_scatter_block", rc);
    SUBLET_RETURN_IF_ERROR(Await(ctx, &req));
    if (op == ReduceOp::kAvg) internal::ScaleForAverage(out, count, type, size_);
    return absl::OkStatus();
  }

  absl::Status AllGather(const OpContext& ctx, const void* in, void* out, size_t count,
                         DataType type) override {
    SUBLET_RETURN_IF_ERROR(CheckCount(ctx.op, count * size_));
    MPI_Request req;
    const bool in_place = in == static_cast<char*>(out) + rank_ * count * DataTypeSize(type);
    int rc = MPI_Iallgather(in_place ? MPI_IN_PLACE : in, static_cast<int>(count), MpiType(type), out,
                            static_cast<int>(count), MpiType(type), comm_, &req);
    if (rc != MPI_SUCCESS) return MpiError(ctx.op, "MPI_Iallgather", rc);
    return Await(ctx, &req);
  }

  absl::Status Broadcast(const OpContext& ctx, void* buf, size_t count, DataType type,
                         int root) override {
    SUBLET_RETURN_IF_ERROR(CheckCount(ctx.op, count));
    MPI_Request req;
    int rc = MPI_Ibcast(buf, static_cast<int>(count), MpiType(type), root, comm_, &req);
    if (rc != MPI_SUCCESS) return MpiError(ctx.op, "MPI_Ibcast", rc);
    return Await(ctx, &req);
  }

  absl::Status Send(const OpContext& ctx, const void* buf, size_t bytes, int peer) override {
    SUBLET_RETURN_IF_ERROR(CheckCount(ctx.op, bytes));
    MPI_Request req;
    int rc = MPI_Isend(buf, static_cast<int>(bytes), MPI_BYTE, peer, 0, comm_, &req);
    if (rc != MPI_SUCCESS) return MpiError(ctx.op, "MPI_Isend", rc);
    return Await(ctx, &req);
  }

  absl::Status Recv(const OpContext& ctx, void* buf, size_t bytes, int peer) override {
    SUBLET_RETURN_IF_ERROR(CheckCount(ctx.op, bytes));
    MPI_Request req;
    int rc = MPI_Irecv(buf, static_cast<int>(bytes), MPI_BYTE, peer, 0, comm_, &req);
    if (rc != MPI_SUCCESS) return MpiError(ctx.op, "MPI_Irecv", rc);
    return Await(ctx, &req);
  }

  absl::Status Barrier(const OpContext& ctx) override {
    MPI_Request req;
    int rc = MPI_Ibarrier(comm_, &req);
    if (rc != MPI_SUCCESS) return MpiError(ctx.op, "MPI_Ibarrier", rc);
    return Await(ctx, &req);
  }

  absl::StatusOr<std::unique_ptr<internal::Backend>> Split(const OpContext& ctx, int color,
                                                           int key) override {
    MPI_Comm child;
    int rc = MPI_Comm_split(comm_, color < 0 ? MPI_UNDEFINED : color, key, &child);
    if (rc != MPI_SUCCESS) return MpiError(ctx.op, "MPI_Comm_split", rc);
    if (child == MPI_COMM_NULL) return std::unique_ptr<internal::Backend>();
    return std::unique_ptr<internal::Backend>(new MpiBackend(child));
  }

 private:
  MPI_Comm comm_;
  int rank_ = 0;
  int size_ = 1;
  Ops ops_;
};

}  // namespace

absl::Status EnsureMpi() {
  int initialized = 0;
  MPI_Initialized(&initialized);
  if (initialized) return absl::OkStatus();
  int provided = 0;
  int rc = MPI_Init_thread(nullptr, nullptr, MPI_THREAD_MULTIPLE, &provided);
  if (rc != MPI_SUCCESS) return MpiError("mpi", "MPI_Init_thread", rc);
  std::atexit(FinalizeAtExit);
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<internal::Backend>> CreateMpiBackend() {
  SUBLET_RETURN_IF_ERROR(EnsureMpi());
  MPI_Comm comm;
  MPI_Comm_dup(MPI_COMM_WORLD, &comm);
  return std::unique_ptr<internal::Backend>(new MpiBackend(comm));
}

absl::StatusOr<std::string> BroadcastFromRankZero(const std::string& value) {
  SUBLET_RETURN_IF_ERROR(EnsureMpi());
  char buf[256] = {};
  std::strncpy(buf, value.c_str(), sizeof(buf) - 1);
  int rc = MPI_Bcast(buf, sizeof(buf), MPI_CHAR, 0, MPI_COMM_WORLD);
  if (rc != MPI_SUCCESS) return MpiError("rendezvous", "MPI_Bcast", rc);
  return std::string(buf);
}

}  // namespace sublet::collectives::mpi

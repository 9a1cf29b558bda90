#include "collectives/communicator.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "collectives/internal/backend.h"
#include "collectives/internal/executor.h"
#include "common/status.h"

namespace sublet::collectives {

using internal::OpContext;

std::string BackendKindName(BackendKind kind) {
  switch (kind) {
    case BackendKind::kAuto: return "auto";
    case BackendKind::kHost: return "host";
    case BackendKind::kMpi: return "mpi";
    case BackendKind::kNccl: return "nccl";
  }
  return "?";
}

absl::StatusOr<BackendKind> ParseBackendKind(const std::string& name) {
  for (BackendKind k : {BackendKind::kAuto, BackendKind::kHost, BackendKind::kMpi,
                        BackendKind::kNccl}) {
    if (BackendKindName(k) == name) return k;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("backend: '", name, "' is not one of auto, host, mpi, nccl"));
}

std::string DataTypeName(DataType t) {
  switch (t) {
    case DataType::kF32: return "f32";
    case DataType::kF64: return "f64";
    case DataType::kBF16: return "bf16";
    case DataType::kF16: return "f16";
    case DataType::kI32: return "i32";
    case DataType::kI64: return "i64";
  }
  return "?";
}

std::string ReduceOpName(ReduceOp op) {
  switch (op) {
    case ReduceOp::kSum: return "sum";
    case ReduceOp::kAvg: return "avg";
    case ReduceOp::kMax: return "max";
    case ReduceOp::kMin: return "min";
  }
  return "?";
}

// Shared by the communicator and the closures it queues: the first failure of
// an operation poisons the group (its peers' positions in the protocol are
// unknown), and later operations fail fast instead of hanging or corrupting.
struct Communicator::State {
  internal::Backend* backend;
  absl::Duration timeout;
  std::mutex mu;
  absl::Status broken;  // guarded by mu

  absl::Status Execute(const char* op, const std::function<absl::Status(const OpContext&)>& fn) {
    {
      std::lock_guard<std::mutex> lock(mu);
      if (!broken.ok()) {
        return absl::FailedPreconditionError(absl::StrCat(
            op, ": communicator unusable after an earlier failure: ", broken.message()));
      }
    }
    OpContext ctx{op, absl::Now() + timeout};
    absl::Status status = fn(ctx);
    if (!status.ok()) {
      std::lock_guard<std::mutex> lock(mu);
      if (broken.ok()) broken = status;
    }
    return status;
  }
};

Communicator::Communicator(std::unique_ptr<internal::Backend> backend, CommunicatorOptions options)
    : backend_(std::move(backend)),
      options_(std::move(options)),
      state_(std::make_shared<State>()),
      executor_(std::make_unique<internal::Executor>()) {
  state_->backend = backend_.get();
  state_->timeout = options_.timeout;
}

Communicator::~Communicator() { executor_.reset(); }

int Communicator::rank() const { return backend_->rank(); }
int Communicator::size() const { return backend_->size(); }
std::string Communicator::backend_name() const { return backend_->name(); }

namespace {

WorkPtr Failed(const char* op, absl::Status status) {
  auto work = std::make_shared<Work>(op);
  work->Complete(std::move(status));
  return work;
}

absl::Status CheckRank(const char* op, const char* what, int r, int size) {
  if (r >= 0 && r < size) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat(op, ": ", what, " ", r, " is outside the group of ", size));
}

}  // namespace

WorkPtr Communicator::Enqueue(const char* op, Op fn) {
  auto state = state_;
  return executor_->Submit(op, [state, op, fn = std::move(fn)] { return state->Execute(op, fn); });
}

absl::Status Communicator::RunNow(const char* op, Op fn) {
  auto state = state_;
  return executor_->Run(op, [state, op, fn = std::move(fn)] { return state->Execute(op, fn); });
}

absl::StatusOr<std::unique_ptr<Communicator>> Communicator::Split(int color, int key) {
  std::unique_ptr<internal::Backend> child;
  absl::Status status = RunNow("split", [&](const OpContext& ctx) -> absl::Status {
    auto made = backend_->Split(ctx, color, key);
    if (!made.ok()) return made.status();
    child = std::move(made).value();
    return absl::OkStatus();
  });
  if (!status.ok()) return status;
  if (!child) return std::unique_ptr<Communicator>();
  return std::make_unique<Communicator>(std::move(child), options_);
}

WorkPtr Communicator::AllReduceAsync(const void* in, void* out, size_t count, DataType type,
                                     ReduceOp op) {
  internal::Backend* b = backend_.get();
  return Enqueue("allreduce", [=](const OpContext& c) {
    return b->AllReduce(c, in, out, count, type, op);
  });
}

WorkPtr Communicator::ReduceScatterAsync(const void* in, void* out, size_t count, DataType type,
                                         ReduceOp op) {
  internal::Backend* b = backend_.get();
  return Enqueue("reduce_scatter", [=](const OpContext& c) {
    return b->ReduceScatter(c, in, out, count, type, op);
  });
}

WorkPtr Communicator::AllGatherAsync(const void* in, void* out, size_t count, DataType type) {
  internal::Backend* b = backend_.get();
  return Enqueue("allgather",
                 [=](const OpContext& c) { return b->AllGather(c, in, out, count, type); });
}

WorkPtr Communicator::BroadcastAsync(void* buf, size_t count, DataType type, int root) {
  absl::Status valid = CheckRank("broadcast", "root", root, size());
  if (!valid.ok()) return Failed("broadcast", valid);
  internal::Backend* b = backend_.get();
  return Enqueue("broadcast",
                 [=](const OpContext& c) { return b->Broadcast(c, buf, count, type, root); });
}

WorkPtr Communicator::SendAsync(const void* buf, size_t count, DataType type, int peer) {
  absl::Status valid = CheckRank("send", "peer", peer, size());
  if (valid.ok() && peer == rank()) valid = absl::InvalidArgumentError("send: peer is self");
  if (!valid.ok()) return Failed("send", valid);
  internal::Backend* b = backend_.get();
  size_t bytes = count * DataTypeSize(type);
  return Enqueue("send", [=](const OpContext& c) { return b->Send(c, buf, bytes, peer); });
}

WorkPtr Communicator::RecvAsync(void* buf, size_t count, DataType type, int peer) {
  absl::Status valid = CheckRank("recv", "peer", peer, size());
  if (valid.ok() && peer == rank()) valid = absl::InvalidArgumentError("recv: peer is self");
  if (!valid.ok()) return Failed("recv", valid);
  internal::Backend* b = backend_.get();
  size_t bytes = count * DataTypeSize(type);
  return Enqueue("recv", [=](const OpContext& c) { return b->Recv(c, buf, bytes, peer); });
}

WorkPtr Communicator::BarrierAsync() {
  internal::Backend* b = backend_.get();
  return Enqueue("barrier", [=](const OpContext& c) { return b->Barrier(c); });
}

absl::Status Communicator::AllReduce(const void* in, void* out, size_t count, DataType type,
                                     ReduceOp op) {
  return RunNow("allreduce", [&](const OpContext& c) {
    return backend_->AllReduce(c, in, out, count, type, op);
  });
}

absl::Status Communicator::ReduceScatter(const void* in, void* out, size_t count, DataType type,
                                         ReduceOp op) {
  return RunNow("reduce_scatter", [&](const OpContext& c) {
    return backend_->ReduceScatter(c, in, out, count, type, op);
  });
}

absl::Status Communicator::AllGather(const void* in, void* out, size_t count, DataType type) {
  return RunNow("allgather",
                [&](const OpContext& c) { return backend_->AllGather(c, in, out, count, type); });
}

absl::Status Communicator::Broadcast(void* buf, size_t count, DataType type, int root) {
  SUBLET_RETURN_IF_ERROR(CheckRank("broadcast", "root", root, size()));
  return RunNow("broadcast",
                [&](const OpContext& c) { return backend_->Broadcast(c, buf, count, type, root); });
}

absl::Status Communicator::Send(const void* buf, size_t count, DataType type, int peer) {
  return SendAsync(buf, count, type, peer)->Wait();
}

absl::Status Communicator::Recv(void* buf, size_t count, DataType type, int peer) {
  return RecvAsync(buf, count, type, peer)->Wait();
}

absl::Status Communicator::Barrier() {
  return RunNow("barrier", [&](const OpContext& c) { return backend_->Barrier(c); });
}

}  // namespace sublet::collectives

// The communicator: the one object a Sublet rank talks to the other ranks of
// its job through. A group of `size` ranks, each holding one Communicator,
// issues the same collective operations in the same order; the backend (host,
// mpi or nccl) moves the bytes.
//
// Every operation has a blocking form and an async form. The async form
// returns a Work handle at once; operations of one communicator execute in
// the order they were issued, one at a time, on a worker thread (a blocking
// call with nothing queued runs on the caller's thread, so small operations
// pay no thread hand-off). Buffers must stay valid until the Work completes.
//
// Failures are values. An operation that cannot complete within
// Options::timeout fails with DeadlineExceeded naming the operation and the
// peer it waited for; after any failure of a collective the group's state is
// unknown, so the communicator refuses further operations
// (FailedPrecondition) and must be recreated.
//
// Thread-safety: a Communicator may be used from several threads; operations
// are serialised in issue order. Sub-communicators from Split are independent
// and may run concurrently with their parent.
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "collectives/types.h"
#include "collectives/work.h"

namespace sublet::collectives {

namespace internal {
class Backend;
class Executor;
struct OpContext;
}  // namespace internal

enum class BackendKind {
  kAuto,  // nccl when a CUDA device exists, else mpi under mpirun, else host
  kHost,  // shared memory within a node, pipelined TCP ring between nodes
  kMpi,   // Open MPI (requires running under mpirun)
  kNccl,  // NCCL; refused with FailedPrecondition when no CUDA device exists
};

std::string BackendKindName(BackendKind kind);
absl::StatusOr<BackendKind> ParseBackendKind(const std::string& name);

struct CommunicatorOptions {
  BackendKind backend = BackendKind::kAuto;
  // Per operation, from when it starts executing; also bounds rendezvous.
  absl::Duration timeout = absl::Minutes(5);
  // Host backend: bytes per rank per pipeline stage of the shared segment.
  size_t shm_slot_bytes = size_t{1} << 20;
  // Host backend: how long a rank waiting for a peer in shared memory spins
  // before sleeping on a futex. Spinning keeps a rank that has its own core
  // ready to go (sleeping hands the core away and waking takes a scheduler
  // slice on a loaded machine); with more ranks than cores keep it short.
  absl::Duration shm_spin = absl::Microseconds(500);
  // Host backend: TCP ring segment (the unit of send/recv/reduce overlap).
  size_t tcp_segment_bytes = size_t{512} << 10;
};

class Communicator {
 public:
  // Wraps a started backend; use CreateCommunicator (bootstrap.h) instead.
  Communicator(std::unique_ptr<internal::Backend> backend, CommunicatorOptions options);
  ~Communicator();
  Communicator(const Communicator&) = delete;
  Communicator& operator=(const Communicator&) = delete;

  int rank() const;
  int size() const;
  std::string backend_name() const;
  const CommunicatorOptions& options() const { return options_; }

  // Collective over this group: ranks passing the same `color` form a new
  // group, ordered by (key, parent rank). A negative color returns nullptr
  // (the rank takes part in the split but joins no group).
  absl::StatusOr<std::unique_ptr<Communicator>> Split(int color, int key);

  // out[i] = op over ranks of in[i]; `in == out` is allowed (in place).
  absl::Status AllReduce(const void* in, void* out, size_t count, DataType type, ReduceOp op);
  // `in` holds size() * count elements; out[i] = op over ranks of
  // in[rank() * count + i].
  absl::Status ReduceScatter(const void* in, void* out, size_t count, DataType type, ReduceOp op);
  // out holds size() * count elements: rank r's `in` lands at out[r * count].
  absl::Status AllGather(const void* in, void* out, size_t count, DataType type);
  absl::Status Broadcast(void* buf, size_t count, DataType type, int root);
  // Point-to-point, matched in issue order per peer pair. The counts must
  // agree (InvalidArgument otherwise).
  absl::Status Send(const void* buf, size_t count, DataType type, int peer);
  absl::Status Recv(void* buf, size_t count, DataType type, int peer);
  absl::Status Barrier();

  WorkPtr AllReduceAsync(const void* in, void* out, size_t count, DataType type, ReduceOp op);
  WorkPtr ReduceScatterAsync(const void* in, void* out, size_t count, DataType type, ReduceOp op);
  WorkPtr AllGatherAsync(const void* in, void* out, size_t count, DataType type);
  WorkPtr BroadcastAsync(void* buf, size_t count, DataType type, int root);
  WorkPtr SendAsync(const void* buf, size_t count, DataType type, int peer);
  WorkPtr RecvAsync(void* buf, size_t count, DataType type, int peer);
  WorkPtr BarrierAsync();

 private:
  struct State;
  using Op = std::function<absl::Status(const internal::OpContext&)>;
  WorkPtr Enqueue(const char* op, Op fn);
  absl::Status RunNow(const char* op, Op fn);

  std::unique_ptr<internal::Backend> backend_;
  CommunicatorOptions options_;
  std::shared_ptr<State> state_;
  std::unique_ptr<internal::Executor> executor_;  // last: drained before the rest goes
};

}  // namespace sublet::collectives

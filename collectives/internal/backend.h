// What a backend implements: the blocking operations of one group member.
// Each call gets a deadline; when a peer does not make progress by then the
// call returns DeadlineExceeded naming `op` and that peer. Calls are made one
// at a time, in issue order (the Communicator's executor guarantees it).
#pragma once

#include <cstddef>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "collectives/types.h"

namespace sublet::collectives::internal {

struct OpContext {
  const char* op;        // "allreduce", ... for error messages
  absl::Time deadline;
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  virtual std::string name() const = 0;

  virtual absl::Status AllReduce(const OpContext& ctx, const void* in, void* out, size_t count,
                                 DataType type, ReduceOp op) = 0;
  virtual absl::Status ReduceScatter(const OpContext& ctx, const void* in, void* out, size_t count,
                                     DataType type, ReduceOp op) = 0;
  virtual absl::Status AllGather(const OpContext& ctx, const void* in, void* out, size_t count,
                                 DataType type) = 0;
  virtual absl::Status Broadcast(const OpContext& ctx, void* buf, size_t count, DataType type,
                                 int root) = 0;
  virtual absl::Status Send(const OpContext& ctx, const void* buf, size_t bytes, int peer) = 0;
  virtual absl::Status Recv(const OpContext& ctx, void* buf, size_t bytes, int peer) = 0;
  virtual absl::Status Barrier(const OpContext& ctx) = 0;
  // Returns nullptr for a negative color.
  virtual absl::StatusOr<std::unique_ptr<Backend>> Split(const OpContext& ctx, int color,
                                                         int key) = 0;
};

}  // namespace sublet::collectives::internal

// The host backend's algorithms, one file per operation (allreduce.cc,
// reduce_scatter.cc, allgather.cc, broadcast.cc). Each comes in two
// flavours: over a node's shared segment (all ranks on one node) and over a
// TCP ring (ranks on several nodes). Group size 1 never gets here.
#pragma once

#include <cstddef>
#include <vector>

#include "absl/status/status.h"
#include "collectives/host/shm_segment.h"
#include "collectives/host/tcp_mesh.h"
#include "collectives/internal/backend.h"
#include "collectives/types.h"

namespace sublet::collectives::host {

using internal::OpContext;

// Reusable scratch memory of the TCP algorithms (grows, never shrinks).
struct Scratch {
  std::vector<char> a, b, c;
  static char* Get(std::vector<char>& v, size_t bytes) {
    if (v.size() < bytes) v.resize(bytes);
    return v.data();
  }
};

absl::Status ShmAllReduce(ShmSegment& seg, const OpContext& ctx, const void* in, void* out,
                          size_t count, DataType type, ReduceOp op);
absl::Status RingAllReduce(TcpMesh& mesh, Scratch& scratch, size_t segment_bytes,
                           const OpContext& ctx, const void* in, void* out, size_t count,
                           DataType type, ReduceOp op);

absl::Status ShmReduceScatter(ShmSegment& seg, const OpContext& ctx, const void* in, void* out,
                              size_t count, DataType type, ReduceOp op);
absl::Status RingReduceScatter(TcpMesh& mesh, Scratch& scratch, size_t segment_bytes,
                               const OpContext& ctx, const void* in, void* out, size_t count,
                               DataType type, ReduceOp op);

absl::Status ShmAllGather(ShmSegment& seg, const OpContext& ctx, const void* in, void* out,
                          size_t count, DataType type);
absl::Status RingAllGather(TcpMesh& mesh, const OpContext& ctx, const void* in, void* out,
                           size_t count, DataType type);

absl::Status ShmBroadcast(ShmSegment& seg, const OpContext& ctx, void* buf, size_t count,
                          DataType type, int root);
absl::Status RingBroadcast(TcpMesh& mesh, size_t segment_bytes, const OpContext& ctx, void* buf,
                           size_t bytes, int root);

// Ring helpers shared by the TCP algorithms.
inline int Next(int r, int p) { return (r + 1) % p; }
inline int Prev(int r, int p) { return (r + p - 1) % p; }
inline int Mod(int x, int p) { return ((x % p) + p) % p; }

}  // namespace sublet::collectives::host

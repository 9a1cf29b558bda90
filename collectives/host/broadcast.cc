// Broadcast from `root`.
//
// Shared memory: rounds of one slot; the root copies its slice into its slot,
// all Sync, the others copy it out.
//
// TCP: a pipelined chain root -> root+1 -> ... -> root-1: each rank receives
// a segment from its predecessor and forwards it to its successor before
// taking the next, so all links carry data at once.
#include <cstring>

#include "collectives/host/algorithms.h"
#include "common/status.h"

namespace sublet::collectives::host {

absl::Status ShmBroadcast(ShmSegment& seg, const OpContext& ctx, void* buf, size_t count,
                          DataType type, int root) {
  const int me = seg.rank();
  const size_t esz = DataTypeSize(type);
  const size_t block = std::max<size_t>(1, seg.slot_bytes() / esz);
  char* data = static_cast<char*>(buf);
  for (size_t off = 0; off < count; off += block) {
    const size_t n = std::min(block, count - off);
    const int stage = seg.NextStage();
    if (me == root) std::memcpy(seg.slot(me, stage), data + off * esz, n * esz);
    SUBLET_RETURN_IF_ERROR(seg.Sync(ctx));
    if (me != root) std::memcpy(data + off * esz, seg.slot(root, stage), n * esz);
  }
  return absl::OkStatus();
}

absl::Status RingBroadcast(TcpMesh& mesh, size_t segment_bytes, const OpContext& ctx, void* buf,
                           size_t bytes, int root) {
  const int p = mesh.size(), me = mesh.rank();
  const int next = Next(me, p), prev = Prev(me, p);
  const bool receives = me != root, forwards = next != root;
  char* data = static_cast<char*>(buf);
  for (size_t off = 0; off < bytes; off += segment_bytes) {
    const size_t n = std::min(segment_bytes, bytes - off);
    if (receives) {
      SUBLET_RETURN_IF_ERROR(internal::ReadFull(mesh.fd(prev), data + off, n, ctx.deadline,
                                                TcpMesh::Peer(ctx.op, prev)));
    }
    if (forwards) {
      SUBLET_RETURN_IF_ERROR(internal::WriteFull(mesh.fd(next), data + off, n, ctx.deadline,
                                                 TcpMesh::Peer(ctx.op, next)));
    }
  }
  return absl::OkStatus();
}

}  // namespace sublet::collectives::host

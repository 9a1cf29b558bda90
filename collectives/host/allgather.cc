// AllGather: rank r's `count` elements land at out[r * count] everywhere.
//
// Shared memory: rounds of one slot; each rank copies its slice into its
// slot and into its own place in the output (before the Sync, where a rank
// that arrives first would otherwise wait), Syncs, and copies every other
// slot's slice into place (outputs of kStreamingBytes and more with
// non-temporal stores, internal::CopyOut).
//
// TCP ring: rank r places its own block, then for p-1 steps forwards the
// block it got last (starting with its own) to r+1 while receiving the next
// one from r-1 directly into place.
#include <algorithm>
#include <cstring>

#include "collectives/host/algorithms.h"
#include "collectives/internal/reduce.h"
#include "common/status.h"

namespace sublet::collectives::host {

absl::Status ShmAllGather(ShmSegment& seg, const OpContext& ctx, const void* in, void* out,
                          size_t count, DataType type) {
  const int p = seg.size(), me = seg.rank();
  const size_t esz = DataTypeSize(type);
  const size_t block = std::max<size_t>(1, seg.slot_bytes() / esz);
  const char* src = static_cast<const char*>(in);
  char* dst = static_cast<char*>(out);
  const bool stream = count * p * esz >= internal::kStreamingBytes;
  for (size_t off = 0; off < count; off += block) {
    const size_t n = std::min(block, count - off);
    const int stage = seg.NextStage();
    std::memcpy(seg.slot(me, stage), src + off * esz, n * esz);
    internal::CopyOut(dst + (me * count + off) * esz, src + off * esz, n * esz, stream);
    SUBLET_RETURN_IF_ERROR(seg.Sync(ctx));
    for (int j = 0; j < p; ++j) {
      if (j == me) continue;
      internal::CopyOut(dst + (j * count + off) * esz, seg.slot(j, stage), n * esz, stream);
    }
  }
  return absl::OkStatus();
}

absl::Status RingAllGather(TcpMesh& mesh, const OpContext& ctx, const void* in, void* out,
                           size_t count, DataType type) {
  const int p = mesh.size(), me = mesh.rank();
  const int next = Next(me, p), prev = Prev(me, p);
  const size_t bytes = count * DataTypeSize(type);
  char* dst = static_cast<char*>(out);
  if (dst + me * bytes != in) std::memmove(dst + me * bytes, in, bytes);
  for (int i = 0; i < p - 1; ++i) {
    const int s = Mod(me - i, p), r = Mod(me - i - 1, p);
    SUBLET_RETURN_IF_ERROR(internal::SendRecv(
        mesh.fd(next), dst + s * bytes, bytes, TcpMesh::Peer(ctx.op, next), mesh.fd(prev),
        dst + r * bytes, bytes, TcpMesh::Peer(ctx.op, prev), ctx.deadline));
  }
  return absl::OkStatus();
}

}  // namespace sublet::collectives::host

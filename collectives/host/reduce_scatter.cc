// ReduceScatter: `in` holds p blocks of `count`; rank r ends with the
// reduction of block r.
//
// Shared memory: rounds of slot_bytes/p elements per block. Each rank copies
// the round's slice of every other rank's block into its slot (slice j at
// j*b), Syncs, then reduces its own input's slice r with slice r of every
// other slot straight into its output. One Sync per round; the two stages
// keep the next round's copies off the slots still being read. Outputs of
// kStreamingBytes and more go through an L1-sized buffer and non-temporal
// stores (see internal::CopyOut).
//
// TCP ring: p-1 steps; at step i rank r sends its partial sum of block
// r-i-1 and receives the partial of block r-i-2, adding its own input to
// it, so after p-1 steps it holds block r in full. Partials alternate between
// two scratch buffers (one being sent while the other fills).
#include <algorithm>
#include <cstring>

#include "collectives/host/algorithms.h"
#include "collectives/internal/reduce.h"
#include "common/status.h"

namespace sublet::collectives::host {
namespace {
// Sub-block of the reduction when the output is streamed: stays in L1.
constexpr size_t kSubBlockBytes = 16 << 10;
}  // namespace

absl::Status ShmReduceScatter(ShmSegment& seg, const OpContext& ctx, const void* in, void* out,
                              size_t count, DataType type, ReduceOp op) {
  const int p = seg.size(), me = seg.rank();
  const size_t esz = DataTypeSize(type);
  const size_t block = std::max<size_t>(1, seg.slot_bytes() / esz / p);
  const bool stream = count * esz >= internal::kStreamingBytes;
  const size_t sub = std::max<size_t>(1, kSubBlockBytes / esz);
  alignas(64) char staging[kSubBlockBytes];
  const char* src = static_cast<const char*>(in);
  char* dst = static_cast<char*>(out);
  for (size_t off = 0; off < count; off += block) {
    const size_t n = std::min(block, count - off);
    const int stage = seg.NextStage();
    char* slot = seg.slot(me, stage);
    for (int j = 0; j < p; ++j) {
      if (j != me) std::memcpy(slot + j * block * esz, src + (j * count + off) * esz, n * esz);
    }
    SUBLET_RETURN_IF_ERROR(seg.Sync(ctx));
    auto piece = [&](int j, size_t b) { return seg.slot(j, stage) + (me * block + b) * esz; };
    for (size_t b = 0; b < n; b += sub) {
      const size_t m = std::min(sub, n - b);
      char* acc = stream ? staging : dst + (off + b) * esz;
      bool first = true;
      for (int j = 0; j < p; ++j) {
        if (j == me) continue;
        internal::ReduceTo(acc, first ? src + (me * count + off + b) * esz : acc, piece(j, b), m,
                           type, op);
        first = false;
      }
      if (op == ReduceOp::kAvg) internal::ScaleForAverage(acc, m, type, p);
      if (stream) internal::CopyOut(dst + (off + b) * esz, staging, m * esz, true);
    }
  }
  return absl::OkStatus();
}

absl::Status RingReduceScatter(TcpMesh& mesh, Scratch& scratch, size_t segment_bytes,
                               const OpContext& ctx, const void* in, void* out, size_t count,
                               DataType type, ReduceOp op) {
  const int p = mesh.size(), me = mesh.rank();
  const int next = Next(me, p), prev = Prev(me, p);
  const size_t esz = DataTypeSize(type), bytes = count * esz;
  const char* src = static_cast<const char*>(in);
  char* tmp = Scratch::Get(scratch.a, bytes);
  char* partial[2] = {Scratch::Get(scratch.b, bytes), Scratch::Get(scratch.c, bytes)};
  const size_t seg_elems = std::max<size_t>(1, segment_bytes / esz);
  for (int i = 0; i < p - 1; ++i) {
    const int s = Mod(me - i - 1, p), r = Mod(me - i - 2, p);
    const char* send_from = i == 0 ? src + s * bytes : partial[(i - 1) % 2];
    char* acc = i == p - 2 ? static_cast<char*>(out) : partial[i % 2];
    const char* mine = src + r * bytes;
    size_t reduced = 0;
    auto reduce_upto = [&](size_t elems) {
      if (elems <= reduced) return;
      internal::ReduceTo(acc + reduced * esz, mine + reduced * esz, tmp + reduced * esz,
                         elems - reduced, type, op);
      reduced = elems;
    };
    SUBLET_RETURN_IF_ERROR(internal::SendRecv(
        mesh.fd(next), send_from, bytes, TcpMesh::Peer(ctx.op, next), mesh.fd(prev), tmp, bytes,
        TcpMesh::Peer(ctx.op, prev), ctx.deadline, [&](size_t got) {
          size_t elems = got / esz;
          if (elems - reduced >= seg_elems) reduce_upto(elems / seg_elems * seg_elems);
        }));
    reduce_upto(count);
  }
  if (op == ReduceOp::kAvg) internal::ScaleForAverage(out, count, type, p);
  return absl::OkStatus();
}

}  // namespace sublet::collectives::host

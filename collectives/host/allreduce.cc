// AllReduce.
//
// Shared memory (one node, p ranks): the buffer is processed in rounds of
// one slot (slot_bytes) per rank; each round is cut into p pieces (64-byte
// aligned), piece r being rank r's to reduce. In each round rank r
//   1. copies the pieces the other ranks reduce from its input into the same
//      places of its own slot,                                      Sync;
//   2. reduces piece r: its own input piece with every other slot's piece r,
//      into piece r of its slot (and copies it to its output),      Sync;
//   3. copies every other rank's reduced piece out of their slots.
// Rounds alternate between two stages, so step 3 of round k overlaps step 1
// of round k+1 on the other ranks. Against the in-place scheme that copies
// the whole input in and the whole result out ((3p-1)*S bytes moved), each
// rank skips copying in, and back out, its own piece; everything happens in
// cache-sized blocks; the reduction loops are vectorised (internal/reduce.cc).
//
// TCP ring (several nodes): reduce-scatter then all-gather around the ring
// (rank r sends to r+1, receives from r-1), p-1 steps each, every step a
// simultaneous send and receive. The received chunk is reduced segment by
// segment while the rest of it is still arriving.
#include <cstring>

#include "collectives/host/algorithms.h"
#include "collectives/internal/numeric.h"
#include "collectives/internal/reduce.h"
#include "common/status.h"

namespace sublet::collectives::host {

namespace {
// Elements per 64 bytes: piece boundaries on cache lines.
size_t Align(size_t esz) { return esz >= 64 ? 1 : 64 / esz; }
}  // namespace

absl::Status ShmAllReduce(ShmSegment& seg, const OpContext& ctx, const void* in, void* out,
                          size_t count, DataType type, ReduceOp op) {
  const int p = seg.size(), me = seg.rank();
  const size_t esz = DataTypeSize(type);
  const size_t block = seg.slot_bytes() / esz;
  const char* src = static_cast<const char*>(in);
  char* dst = static_cast<char*>(out);
  for (size_t off = 0; off < count; off += block) {
    const size_t n = std::min(block, count - off);
    const int stage = seg.NextStage();
    char* mine = seg.slot(me, stage);
    auto piece = [&](int j) { return ChunkOf(n, p, j, Align(esz)); };
    for (int j = 0; j < p; ++j) {  // the pieces the other ranks reduce
      if (j == me) continue;
      Range r = piece(j);
      std::memcpy(mine + r.begin * esz, src + (off + r.begin) * esz, r.size() * esz);
    }
    SUBLET_RETURN_IF_ERROR(seg.Sync(ctx));
    const Range own = piece(me);
    char* acc = mine + own.begin * esz;
    const char* own_in = src + (off + own.begin) * esz;
    bool first = true;
    for (int j = 0; j < p && own.size() > 0; ++j) {
      if (j == me) continue;
      const char* theirs = seg.slot(j, stage) + own.begin * esz;
      internal::ReduceTo(acc, first ? own_in : acc, theirs, own.size(), type, op);
      first = false;
    }
    if (op == ReduceOp::kAvg) internal::ScaleForAverage(acc, own.size(), type, p);
    std::memcpy(dst + (off + own.begin) * esz, acc, own.size() * esz);
    SUBLET_RETURN_IF_ERROR(seg.Sync(ctx));
    for (int j = 0; j < p; ++j) {
      if (j == me) continue;
      Range r = piece(j);
      std::memcpy(dst + (off + r.begin) * esz, seg.slot(j, stage) + r.begin * esz, r.size() * esz);
    }
  }
  return absl::OkStatus();
}

absl::Status RingAllReduce(TcpMesh& mesh, Scratch& scratch, size_t segment_bytes,
                           const OpContext& ctx, const void* in, void* out, size_t count,
                           DataType type, ReduceOp op) {
  const int p = mesh.size(), me = mesh.rank();
  const int next = Next(me, p), prev = Prev(me, p);
  const size_t esz = DataTypeSize(type);
  const char* src = static_cast<const char*>(in);
  char* dst = static_cast<char*>(out);
  auto chunk = [&](int c) { return ChunkOf(count, p, c, Align(esz)); };
  char* tmp = Scratch::Get(scratch.a, chunk(0).size() * esz);
  const size_t seg_elems = std::max<size_t>(1, segment_bytes / esz);

  // Reduce-scatter: after step i, out[chunk(me - i - 2)] holds i + 2 ranks' sum.
  for (int i = 0; i < p - 1; ++i) {
    const Range s = chunk(Mod(me - i - 1, p));
    const Range r = chunk(Mod(me - i - 2, p));
    const char* send_from = (i == 0 ? src : dst) + s.begin * esz;
    size_t reduced = 0;
    auto reduce_upto = [&](size_t elems) {
      if (elems <= reduced) return;
      internal::ReduceTo(dst + (r.begin + reduced) * esz, src + (r.begin + reduced) * esz,
                         tmp + reduced * esz, elems - reduced, type, op);
      reduced = elems;
    };
    SUBLET_RETURN_IF_ERROR(internal::SendRecv(
        mesh.fd(next), send_from, s.size() * esz, TcpMesh::Peer(ctx.op, next), mesh.fd(prev), tmp,
        r.size() * esz, TcpMesh::Peer(ctx.op, prev), ctx.deadline, [&](size_t got) {
          size_t elems = got / esz;
          if (elems - reduced >= seg_elems) reduce_upto(elems / seg_elems * seg_elems);
        }));
    reduce_upto(r.size());
  }
  const Range own = chunk(me);
  if (p == 1) std::memmove(dst, src, count * esz);
  if (op == ReduceOp::kAvg) internal::ScaleForAverage(dst + own.begin * esz, own.size(), type, p);

  // All-gather: step i forwards chunk(me - i), receives chunk(me - i - 1).
  for (int i = 0; i < p - 1; ++i) {
    const Range s = chunk(Mod(me - i, p));
    const Range r = chunk(Mod(me - i - 1, p));
    SUBLET_RETURN_IF_ERROR(internal::SendRecv(
        mesh.fd(next), dst + s.begin * esz, s.size() * esz, TcpMesh::Peer(ctx.op, next),
        mesh.fd(prev), dst + r.begin * esz, r.size() * esz, TcpMesh::Peer(ctx.op, prev),
        ctx.deadline));
  }
  return absl::OkStatus();
}

}  // namespace sublet::collectives::host

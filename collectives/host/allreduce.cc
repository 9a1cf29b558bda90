// AllReduce.
//
// Shared memory (one node, p ranks): the buffer is processed in rounds of
// one slot (slot_bytes) per rank; each round is cut into p pieces (64-byte
// aligned), piece r being rank r's to reduce. For round k rank r
//   in(k):  copies the pieces the other ranks reduce from its input into the
//           same places of its own slot (stage k%2);
//   red(k): reduces piece r: its own input piece with every other slot's
//           piece r, into piece r of its slot and into its output;
//   out(k): copies every other rank's reduced piece out of their slots.
// The rounds overlap so that each needs one Sync instead of two:
//   in(0) Sync | red(0) in(1) Sync | out(0) red(1) in(2) Sync | ...
//   | out(k-1) red(k) in(k+1) Sync | ... | out(R-2) red(R-1) Sync | out(R-1)
// which is safe because, between Sync k and Sync k+1, red(k) reads peers'
// in(k) and out(k-1) reads peers' red(k-1), both written before Sync k;
// in(k+1) overwrites the pieces of stage (k+1)%2 that peers last read in
// red(k-1), and red(k) the piece of stage k%2 they last read in out(k-2),
// both finished before Sync k; every round is cut at the same places, so
// in(k+1) stays off the piece peers are reading in out(k-1). R rounds take
// R+1 Syncs, not 2R: every Sync is a possible wait for the slowest rank,
// and on a loaded machine a trip through the scheduler.
//
// Buffers of at most kSmallBytes (512) take one round with one Sync instead:
// every rank reduces every copy itself (ShmAllReduceSmall).
//
// Against the in-place scheme that copies the whole input in and the whole
// result out ((3p-1)*S bytes moved), each rank skips copying in, and back
// out, its own piece. The reduction runs in L1-sized sub-blocks that are
// copied to the output while still in cache; outputs of kStreamingBytes
// and more are written with non-temporal stores (no read-for-ownership of
// an output that will not be read again soon). The reduction loops are
// vectorised (internal/reduce.cc).
//
// TCP ring (several nodes): reduce-scatter then all-gather around the ring
// (rank r sends to r+1, receives from r-1), p-1 steps each, every step a
// simultaneous send and receive. The received chunk is reduced segment by
// segment while the rest of it is still arriving.
#include <algorithm>
#include <cstring>

#include "collectives/host/algorithms.h"
#include "collectives/internal/numeric.h"
#include "collectives/internal/reduce.h"
#include "common/status.h"

namespace sublet::collectives::host {

namespace {
// Elements per 64 bytes: piece boundaries on cache lines.
size_t Align(size_t esz) { return esz >= 64 ? 1 : 64 / esz; }

// Up to this many bytes, ShmAllReduceSmall.
constexpr size_t kSmallBytes = 512;

// Sub-block of the reduction: its result is still in L1 when copied out.
constexpr size_t kSubBlockBytes = 16 << 10;

// One ShmAllReduce call: where round k's pieces live in the input, the
// output and the slots.
class ShmAllReduceRounds {
 public:
  ShmAllReduceRounds(ShmSegment& seg, const void* in, void* out, size_t count, DataType type,
                     ReduceOp op)
      : seg_(seg), p_(seg.size()), me_(seg.rank()), esz_(DataTypeSize(type)),
        block_(seg.slot_bytes() / esz_), count_(count), type_(type), op_(op),
        stream_(count * esz_ >= internal::kStreamingBytes),
        src_(static_cast<const char*>(in)), dst_(static_cast<char*>(out)),
        rounds_((count + block_ - 1) / block_), first_(seg.TakeRounds(rounds_)) {}

  uint64_t rounds() const { return rounds_; }

  void In(uint64_t k) const {
    for (int j = 0; j < p_; ++j) {
      if (j == me_) continue;
      const Range r = Piece(k, j);
      std::memcpy(Slot(me_, k, r.begin), src_ + r.begin * esz_, r.size() * esz_);
    }
  }

  void Reduce(uint64_t k) const {
    const Range own = Piece(k, me_);
    const size_t sub = std::max<size_t>(1, kSubBlockBytes / esz_);
    for (size_t b = own.begin; b < own.end; b += sub) {
      const size_t n = std::min(sub, own.end - b);
      char* acc = Slot(me_, k, b);
      bool first = true;
      for (int j = 0; j < p_; ++j) {
        if (j == me_) continue;
        internal::ReduceTo(acc, first ? src_ + b * esz_ : acc, Slot(j, k, b), n, type_, op_);
        first = false;
      }
      if (op_ == ReduceOp::kAvg) internal::ScaleForAverage(acc, n, type_, p_);
      internal::CopyOut(dst_ + b * esz_, acc, n * esz_, stream_);
    }
  }

  void Out(uint64_t k) const {
    for (int j = 0; j < p_; ++j) {
      if (j == me_) continue;
      const Range r = Piece(k, j);
      internal::CopyOut(dst_ + r.begin * esz_, Slot(j, k, r.begin), r.size() * esz_, stream_);
    }
  }

 private:
  // Rank j's piece of round k, in elements of the whole buffer. Every round
  // is cut like the first and a short last round keeps what falls inside
  // it: were it cut anew, in(R-1) could write into the part of a slot that
  // peers are still reading in out(R-3) under another piece's name.
  Range Piece(uint64_t k, int j) const {
    const size_t off = k * block_, n = std::min(block_, count_ - off);
    const Range r = ChunkOf(std::min(block_, count_), p_, j, Align(esz_));
    return Range{off + std::min(r.begin, n), off + std::min(r.end, n)};
  }
  // Where element `elem` (of round k) lives in rank j's slot.
  char* Slot(int j, uint64_t k, size_t elem) const {
    return seg_.slot(j, ShmSegment::StageOf(first_ + k)) + (elem - k * block_) * esz_;
  }

  ShmSegment& seg_;
  const int p_, me_;
  const size_t esz_, block_, count_;
  const DataType type_;
  const ReduceOp op_;
  const bool stream_;
  const char* const src_;
  char* const dst_;
  const uint64_t rounds_, first_;
};

// Small buffers: one round and one Sync. Every rank copies its whole input
// into its slot and reduces all p copies itself, in rank order so that every
// rank gets the same bits. Up to kSmallBytes the redundant reductions cost
// less than the pieces scheme's second Sync (on the 2-core development VM
// the pieces scheme wins from 1 KiB on).
absl::Status ShmAllReduceSmall(ShmSegment& seg, const OpContext& ctx, const void* in, void* out,
                               size_t count, DataType type, ReduceOp op) {
  const int p = seg.size();
  const int stage = seg.NextStage();
  std::memcpy(seg.slot(seg.rank(), stage), in, count * DataTypeSize(type));
  SUBLET_RETURN_IF_ERROR(seg.Sync(ctx));
  internal::ReduceTo(out, seg.slot(0, stage), seg.slot(1, stage), count, type, op);
  for (int j = 2; j < p; ++j) internal::ReduceInto(out, seg.slot(j, stage), count, type, op);
  if (op == ReduceOp::kAvg) internal::ScaleForAverage(out, count, type, p);
  return absl::OkStatus();
}

}  // namespace

absl::Status ShmAllReduce(ShmSegment& seg, const OpContext& ctx, const void* in, void* out,
                          size_t count, DataType type, ReduceOp op) {
  if (count == 0) return absl::OkStatus();
  if (count * DataTypeSize(type) <= std::min(kSmallBytes, seg.slot_bytes())) {
    return ShmAllReduceSmall(seg, ctx, in, out, count, type, op);
  }
  const ShmAllReduceRounds rounds(seg, in, out, count, type, op);
  const uint64_t n = rounds.rounds();
  rounds.In(0);
  for (uint64_t k = 0; k < n; ++k) {
    SUBLET_RETURN_IF_ERROR(seg.Sync(ctx));
    if (k > 0) rounds.Out(k - 1);
    rounds.Reduce(k);
    if (k + 1 < n) rounds.In(k + 1);
  }
  SUBLET_RETURN_IF_ERROR(seg.Sync(ctx));
  rounds.Out(n - 1);
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

// A shared-memory segment for the ranks of one node: one progress counter per
// rank (each on its own cache lines) and, per rank, two slots of `slot_bytes`
// that alternate between rounds (double buffering).
//
// Synchronisation: a rank writes only its own slots, then Sync(): bump my
// counter, wait until every peer's counter has caught up. The rule every
// operation keeps: a rank overwrites a stage only after a Sync that every
// peer entered after its last read of that stage's previous contents. In the
// plain pattern (write round k's stage, Sync, read) a rank begins round k+1
// only after finishing round k, so passing round k+1's Sync proves every peer
// is done reading round k's stage and round k+2 may overwrite it; allreduce
// overlaps rounds and explains its order where it lives. Counters only
// grow and every rank bumps them the same number of times per operation, so
// "peer >= mine" is the whole condition (32-bit counters compared with
// serial-number arithmetic; peers are never 2^31 steps apart).
//
// Waiting spins briefly (a peer on another core answers within microseconds),
// then sleeps on a futex in the segment so that oversubscribed ranks (more
// ranks than cores, or a loaded machine) hand the core to the peer they wait
// for. A publisher calls FUTEX_WAKE only when a waiter has announced itself.
//
// Setup: rank 0 creates the segment, reserving its memory (a /dev/shm too
// small gives ResourceExhausted here), and publishes its name in the store;
// every rank maps it with its pages populated (no collective takes the
// faults); once all have mapped it rank 0 unlinks the name, so nothing is
// left behind in /dev/shm. Works with ranks as processes or as threads.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>

#include "absl/status/statusor.h"
#include "collectives/internal/backend.h"
#include "collectives/store.h"

namespace sublet::collectives::host {

class ShmSegment {
 public:
  static absl::StatusOr<std::unique_ptr<ShmSegment>> Create(Store& store, int rank, int size,
                                                            size_t slot_bytes, absl::Duration spin,
                                                            absl::Time deadline);
  ~ShmSegment();

  int rank() const { return rank_; }
  int size() const { return size_; }
  size_t slot_bytes() const { return slot_bytes_; }

  // Starts a round: returns the stage (0 or 1) this round uses.
  int NextStage() { return StageOf(round_++); }
  // Reserves `n` consecutive rounds and returns the first; round r uses
  // stage StageOf(r).
  uint64_t TakeRounds(uint64_t n) {
    const uint64_t first = round_;
    round_ += n;
    return first;
  }
  static int StageOf(uint64_t round) { return static_cast<int>(round & 1); }
  char* slot(int rank, int stage) const {
    return data_ + (static_cast<size_t>(rank) * 2 + stage) * slot_bytes_;
  }
  // Publishes my progress and waits for every peer to reach it.
  absl::Status Sync(const internal::OpContext& ctx);

 private:
  ShmSegment(int rank, int size, size_t slot_bytes, absl::Duration spin, void* base,
             size_t mapped);
  std::atomic<uint32_t>* counter(int r) const;
  std::atomic<uint32_t>* waiters(int r) const;
  absl::Status WaitFor(int peer, uint32_t target, const internal::OpContext& ctx);

  const int rank_;
  const int size_;
  const size_t slot_bytes_;
  const int64_t spin_ns_;
  void* base_;
  size_t mapped_;
  char* data_;
  uint32_t published_ = 0;
  uint64_t round_ = 0;
};

}  // namespace sublet::collectives::host

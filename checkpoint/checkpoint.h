// Sharded checkpoints for data x tensor parallel training: save (sync or
// async), atomic commit, verified and resharding load, retention, inspection.
// The on-disk layout is described in checkpoint/manifest.h.
//
// Every rank of a job calls the collective functions (SaveCheckpoint,
// LoadCheckpoint, Checkpointer::Save/SaveAsync) with the same step and the
// same tensor specs; ranks coordinate only through the Group the caller
// provides and write to a directory all of them see.
//
// Save protocol (SaveCheckpoint), world rank = dp_rank * tp + tp_rank:
//   1. Rank 0 refuses a step that is already committed, clears and creates
//      <dir>/.tmp-step-N. All ranks exchange (step, topology, spec hash) and
//      stop unless they agree.
//   2. Each rank writes the pieces the plan gives it into shard-<rank>.bin,
//      checksumming every block, then fdatasyncs it. The plan splits each
//      tensor-parallel shard across the data-parallel ranks holding it (a
//      replicated tensor across every rank), so every byte is written once.
//   3. Ranks exchange their checksums and errors.
//   4. If all succeeded, rank 0 writes MANIFEST, then COMMIT (both synced),
//      syncs the temporary directory, renames it to step-N and syncs <dir>;
//      then applies retention. Otherwise it removes the temporary directory.
//   5. Rank 0 tells everyone the outcome; all ranks return the same status.
// A crash at any point leaves either a whole step-N or none: readers ignore
// .tmp-* directories and step directories without a valid COMMIT.
//
// Load picks the newest step whose COMMIT, MANIFEST and the checksums of
// every byte range the ranks read verify on all ranks, skipping (and
// reporting) newer ones that do not. Each rank reads only the ranges that
// overlap its target shards, whatever (dp, tp) saved them.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/types/span.h"
#include "checkpoint/fs.h"
#include "checkpoint/group.h"
#include "checkpoint/manifest.h"
#include "common/status.h"

namespace sublet::checkpoint {

struct Topology {
  int dp = 1;
  int tp = 1;
  int dp_rank = 0;
  int tp_rank = 0;
  int world_rank() const { return dp_rank * tp + tp_rank; }
  int world_size() const { return dp * tp; }
};

// This rank's part of one tensor: the shard `topology.tp_rank` of `spec`,
// row-major, exactly LocalBytes(spec, tp, tp_rank) bytes. Saving only reads
// `data`; loading fills it.
struct TensorShard {
  TensorSpec spec;
  std::byte* data = nullptr;
  uint64_t size = 0;
};

struct SaveOptions {
  std::string dir;             // the job's checkpoint directory (created if absent)
  Topology topology;
  int keep = 3;                // committed checkpoints kept after a save; 0 keeps all
  // Never deleted by retention, e.g. the step this run resumed from.
  std::optional<int64_t> protect_step;
  // Stamped into every manifest; retention only ever deletes checkpoints
  // whose manifest carries the same lineage (a directory may hold others').
  RunInfo run;
  uint64_t block_size = 1 << 20;       // bytes per checksum
  uint64_t min_split_bytes = 4 << 20;  // smaller shards are written whole by one rank
};

struct SaveStats {
  int64_t step = 0;
  uint64_t bytes_written = 0;  // by this rank
  uint64_t total_bytes = 0;    // by all ranks
  double stall_s = 0;          // time the caller was blocked (async: the snapshot)
  double persist_s = 0;        // writing, syncing and committing
};

// Synchronous, collective save from the callers' own buffers.
absl::StatusOr<SaveStats> SaveCheckpoint(FileSystem& fs, Group& group, const SaveOptions& options,
                                         const Cursor& cursor,
                                         absl::Span<const TensorShard> shards);

// Saves in the background. SaveAsync's only pause is copying the shards
// into staging buffers that are kept and reused while sizes stay the same;
// a writer thread then runs SaveCheckpoint from them. SaveAsyncLent takes
// no copy (the caller keeps its buffers unchanged until the writer is done).
// At most one save is in flight: every save first waits for the previous one. The Group
// is used from the writer thread while a save is in flight and from the
// caller's thread otherwise. Not thread-safe: one training thread calls it.
class Checkpointer {
 public:
  using DoneCallback = std::function<void(const absl::StatusOr<SaveStats>&)>;

  // `on_done` (optional) runs on the writer thread after each async save.
  Checkpointer(FileSystem& fs, Group& group, SaveOptions options, DoneCallback on_done = nullptr);
  ~Checkpointer();  // waits for the save in flight
  Checkpointer(const Checkpointer&) = delete;
  Checkpointer& operator=(const Checkpointer&) = delete;

  // Returns once the shards are copied (the first call also allocates and
  // faults in the staging buffers); the outcome comes from Wait() or
  // on_done. Fails only for inputs that cannot be saved.
  absl::Status SaveAsync(const Cursor& cursor, absl::Span<const TensorShard> shards);
  // No snapshot: the writer persists straight from `shards`, which the
  // caller lends until Wait() returns (the next Save* and SaveAsync* wait
  // too); it may read them meanwhile, never write them. For a
  // caller that keeps a second copy of its state anyway, e.g. a trainer
  // whose next optimizer step writes into other buffers (double buffering,
  // worker/runtime/trainer.cc): then a checkpoint costs no copy and no pause.
  // Fails only for inputs that cannot be saved (checked before returning).
  absl::Status SaveAsyncLent(const Cursor& cursor, absl::Span<const TensorShard> shards);
  // Waits for any save in flight, then saves synchronously from the caller's
  // buffers (the mode for a preemption notice).
  absl::StatusOr<SaveStats> Save(const Cursor& cursor, absl::Span<const TensorShard> shards);
  // Waits for the save in flight; returns its result, or that of the last
  // save if none is in flight (FailedPrecondition before any save).
  absl::StatusOr<SaveStats> Wait();
  // The newest step this Checkpointer committed (safe to call any time).
  std::optional<int64_t> last_committed_step() const {
    const int64_t step = last_committed_.load();
    return step < 0 ? std::nullopt : std::optional<int64_t>(step);
  }

 private:
  struct Staging;
  absl::Status CheckShards(absl::Span<const TensorShard> shards) const;
  absl::Status Snapshot(absl::Span<const TensorShard> shards);
  // Starts the writer on `shards` (staging, or lent buffers it keeps).
  void StartWriter(const Cursor& cursor, std::vector<TensorShard> shards, double stall);
  void Record(const absl::StatusOr<SaveStats>& result);

  FileSystem& fs_;
  Group& group_;
  SaveOptions options_;
  DoneCallback on_done_;
  std::unique_ptr<Staging> staging_;
  std::thread writer_;
  absl::StatusOr<SaveStats> last_result_;  // written by the writer, read after join
  std::atomic<int64_t> last_committed_{-1};
};

struct LoadOptions {
  std::string dir;
  Topology topology;                  // the topology loading, not the one that saved
  std::optional<int64_t> step;        // only this step; default: the newest that verifies
  uint64_t max_read_bytes = 16 << 20; // largest single read (and scratch buffer)
  int read_threads = 4;               // reads (and checksums) in flight at once
};

struct LoadResult {
  int64_t step = 0;
  Cursor cursor;
  int saved_dp = 0;
  int saved_tp = 0;
  RunInfo run;                        // of the run that saved it
  uint64_t bytes_read = 0;            // by this rank
  // Newer checkpoints passed over, each "step-N: why".
  std::vector<std::string> skipped;
};

// Collective load into the callers' buffers, resharding as needed. NotFound
// when no checkpoint verifies (the message lists what was skipped and why).
absl::StatusOr<LoadResult> LoadCheckpoint(FileSystem& fs, Group& group, const LoadOptions& options,
                                          absl::Span<const TensorShard> shards);

enum class CheckpointState { kCommitted, kPartial, kCorrupt };
std::string StateName(CheckpointState state);

struct CheckpointInfo {
  int64_t step = 0;
  std::string path;
  CheckpointState state = CheckpointState::kCorrupt;
  std::string problem;              // why not committed
  std::optional<Manifest> manifest; // when committed
};

// Step directories under `dir`, newest first. Checks COMMIT, the MANIFEST
// checksum and the shard file sizes, without reading the shard data.
absl::StatusOr<std::vector<CheckpointInfo>> ListCheckpoints(FileSystem& fs, const std::string& dir);

// Reads a whole step directory and checks every checksum. DataLoss names the
// bad file and the offset of the bad block; NotFound for a missing directory.
absl::StatusOr<Manifest> VerifyCheckpoint(FileSystem& fs, const std::string& step_dir);

// Among the committed checkpoints of `lineage`, keeps the newest `keep` (and
// `protect_step`) and removes the older ones; removes leftover .tmp-*
// directories except `in_progress`. Never removes the newest committed
// checkpoint of the lineage, nor any step directory it cannot attribute to
// the lineage: another run's checkpoints, partial and corrupt steps stay.
absl::Status ApplyRetention(FileSystem& fs, const std::string& dir, int keep,
                            std::optional<int64_t> protect_step, const std::string& lineage,
                            const std::string& in_progress = "");

}  // namespace sublet::checkpoint

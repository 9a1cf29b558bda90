// The data x tensor parallel training loop of sublet-train.
//
// Each step (0-based s) of a run:
//   1. Step boundary: every rank contributes its PreemptionNotice flag to a
//      max all-reduce over the world. If any rank was noticed, all ranks wait
//      for an async save in flight, save step s synchronously (unless it is
//      already committed), report it as the checkpoint step and return
//      kPreempted (sublet-train exits kExitPreempted).
//   2. The global batch (sequences [s*B, (s+1)*B) of the data stream) is cut
//      into dp contiguous shares; this rank runs its share in micro-batches,
//      accumulating gradients scaled by 1 / (B * seq) (gpt.h).
//   3. Data parallel: in overlapped mode (default) each gradient joins its
//      bucket (collectives/overlap/bucketed_allreduce.h) as the last
//      micro-batch's backward finishes it, so buckets are summed over the
//      data group while backward goes on; in serialized mode every gradient
//      is marked after backward. Same buckets, so both give the same bits.
//   4. Replicated parameters' gradients are summed over the tensor group.
//   5. Global-norm clipping (1.0), AdamW at the scheduled learning rate.
//   6. The loss (a world sum) is logged; every checkpoint_every steps an
//      async save starts. It takes no snapshot: the writer reads the state
//      where it lies (Checkpointer::SaveAsyncLent) and the next step's AdamW
//      writes the new state into a second set of buffers, which then become
//      the live ones (double buffering: one extra copy of the state in
//      memory, as a staging buffer would be, and no copy in the step).
// At the start the newest committed checkpoint under checkpoint_dir is
// loaded, resharded to this topology: parameters, AdamW moments and the
// cursor (step; the data position follows from it).
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "absl/status/statusor.h"
#include "worker/runtime/preemption_notice.h"
#include "worker/runtime/process_groups.h"
#include "worker/runtime/progress.h"
#include "worker/train/gpt_params.h"

namespace sublet::worker {

struct TrainerOptions {
  train::GptConfig model;
  int64_t steps = 100;
  uint64_t seed = 0;
  int64_t global_batch = 8;   // sequences per optimizer step, whatever the topology
  int64_t seq_len = 32;
  int64_t micro_batch = 0;    // sequences per forward/backward; 0: this rank's whole share
  float lr = 3e-3f;           // peak; warm-up over steps/10 (at most 100), cosine to lr/10
  std::string data = "synthetic";  // or a path of a text file (byte-level tokens)
  std::string checkpoint_dir;      // empty: no checkpoints
  int64_t checkpoint_every = 0;    // steps between saves; 0: only at the end and on preemption
  int keep = 3;
  // Resume even when the checkpoint's run had other steps, seq-len, data or
  // global batch (the resumed run then follows another curve).
  bool allow_run_change = false;
  bool async_checkpoint = true;
  bool overlap_dp = true;     // false: all-reduce after backward (serialized)
  int tp_chunks = 2;          // collective-matmul chunks
  // Test hook: rank 0 raises SIGUSR1 at itself at the start of this step.
  int64_t signal_at_step = -1;
  // Test hook: each checkpoint file waits this long before it is created.
  int test_checkpoint_write_delay_ms = 0;
};

// InvalidArgument naming the flag when the options cannot run on `world`
// ranks with options' tensor parallel size `tp`.
absl::Status ValidateTrainerOptions(const TrainerOptions& options, int world, int tp);

// kPreempted: a notice came and the run checkpointed (exit 75);
// kStoppedUnsaved: a notice came and there was nowhere to checkpoint (no
// checkpoint_dir), so nothing was saved.
enum class TrainOutcome { kDone, kPreempted, kStoppedUnsaved };

// The rank's JSON lines (DESIGN "sublet-train contract"; sublet-train passes
// a sink on rank 0 only, unless --log-json names {rank}); called from the
// training thread and, for async checkpoint events, the writer thread, so it
// must be thread-safe. May be null.
using LogLineFn = std::function<void(const std::string& json)>;

absl::StatusOr<TrainOutcome> RunTraining(const TrainerOptions& options, ProcessGroups& groups,
                                         PreemptionNotice& notice,
                                         ProgressReporter* progress, const LogLineFn& log_line);

}  // namespace sublet::worker

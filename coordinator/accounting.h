// GPU-seconds accounting: what a job has used, and what a preemption costs
// it. One formula for each, used by the lifecycle (when an attempt ends), by
// victim choice (least work since the last checkpoint) and by the views.
//
// A GPU-second is one rank running for one second (one rank per GPU). Pure
// functions of the job and the time.
#pragma once

#include "absl/time/time.h"
#include "coordinator/model.h"

namespace sublet::coordinator {

// GPU-seconds of the current attempt from its start until `now` (0 when no
// attempt has started; never negative).
double AttemptGpuSeconds(const Job& job, absl::Time now);

// GPU-seconds of the current attempt after its last committed checkpoint (or
// its start, when it committed none since): what the attempt would redo if it
// ended at `now` and resumed from that checkpoint.
double WorkSinceCheckpoint(const Job& job, absl::Time now);

// What a preemption the ranks acknowledged (they checkpointed at the agreed
// step and exited 75) makes the job redo: the work after its last committed
// checkpoint up to the newest step a rank reported beyond it; none when the
// checkpoint is the newest step reported (the time from the commit to the
// exit is teardown, not work). Ranks that report no steps: as
// WorkSinceCheckpoint.
double AcknowledgedWorkSinceCheckpoint(const Job& job, absl::Time now);

// Every GPU-second the job has used up to `now`: its ended attempts, plus the
// running one while it has live ranks.
double GpuSecondsUsed(const Job& job, absl::Time now);

// The current attempt's GPU-seconds beyond the tenant's quota: its share of
// AttemptGpuSeconds held by its attempt_borrowed_gpus.
double AttemptBorrowedGpuSeconds(const Job& job, absl::Time now);

// Of GpuSecondsUsed, those borrowed beyond the tenant's quota.
double GpuSecondsBorrowed(const Job& job, absl::Time now);

}  // namespace sublet::coordinator

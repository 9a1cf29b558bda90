// Merging a rank's progress reports (issue 16): a report carries what the
// rank knows now, and may carry only part of it, e.g. a checkpoint commit
// without a step, or a step without a checkpoint. The worker and the
// coordinator keep the merge of every report of one rank's attempt.
#pragma once

#include "protocols/messages.h"

namespace sublet::protocols {

// Folds `report` into `into`:
//  - a step (step >= 0) replaces the step with its loss and tokens/s (a loss
//    of NaN: the rank reported none for that step);
//  - a committed checkpoint replaces the checkpoint only when newer
//    (checkpoint_step only grows), with its size and persist time when given
//    (> 0);
//  - time_unix_ms is the newest report's (liveness: progress_timeout).
void MergeProgress(Progress& into, const Progress& report);

}  // namespace sublet::protocols

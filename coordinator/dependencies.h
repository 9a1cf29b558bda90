// Job dependencies (spec.depends_on): whether a dependency holds, can still
// come to hold, or never will. A pure policy over how the job it names stands;
// Cluster gathers that and acts on the verdict (cluster_schedule.cc).
//
// A dependency names one job, or an array by its id (its first task's id),
// which stands for every task of the array:
//   when: succeeded  holds once every task succeeded; never once one ended
//                    otherwise (failed or cancelled).
//   when: failed     holds once every task ended and one did not succeed;
//                    never once every task succeeded.
//   when: any        holds once every task ended.
#pragma once

#include <cstdint>
#include <string>

#include "protocols/job_spec.h"

namespace sublet::coordinator {

// How the job (or array) a dependency names stands.
struct DependencyTarget {
  uint64_t id = 0;
  bool array = false;  // an array's id: the counts are over all its tasks
  uint32_t tasks = 1;
  uint32_t ended = 0;      // in a final state
  uint32_t succeeded = 0;  // of those, succeeded
  std::string state;       // a single job's state name ("failed"), for messages
};

enum class DependencyState { kWaiting, kHolds, kNever };

struct DependencyVerdict {
  DependencyState state = DependencyState::kWaiting;
  // kWaiting: what the job waits for ("job 12 to succeed"); kNever: why it
  // never will hold ("job 12 failed").
  std::string what;
};

DependencyVerdict JudgeDependency(const protocols::Dependency& dep, const DependencyTarget& target);

}  // namespace sublet::coordinator

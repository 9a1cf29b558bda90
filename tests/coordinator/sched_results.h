// Reading a SchedResult in scheduler tests: which jobs were placed, in
// order, and why a job waits.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "coordinator/scheduler.h"

namespace sublet::coordinator {

inline std::vector<uint64_t> Placed(const SchedResult& r) {
  std::vector<uint64_t> ids;
  for (const Placement& p : r.placements) ids.push_back(p.job_id);
  return ids;
}

// The reason `id` waits, or "" when it does not.
inline std::string ReasonOf(const SchedResult& r, uint64_t id) {
  for (const Waiting& w : r.waiting) {
    if (w.job_id == id) return w.reason;
  }
  return "";
}

}  // namespace sublet::coordinator

#include "coordinator/accounting.h"

#include <algorithm>

namespace sublet::coordinator {
namespace {

double RankSecondsSince(const Job& job, absl::Time since, absl::Time now) {
  return std::max(0.0, absl::ToDoubleSeconds(now - since)) * static_cast<double>(job.Gpus());
}

}  // namespace

double AttemptGpuSeconds(const Job& job, absl::Time now) {
  if (job.ranks.empty() || job.start_time == absl::InfinitePast()) return 0;
  return RankSecondsSince(job, job.start_time, now);
}

double WorkSinceCheckpoint(const Job& job, absl::Time now) {
  if (job.ranks.empty() || job.start_time == absl::InfinitePast()) return 0;
  return RankSecondsSince(job, std::max(job.start_time, job.last_checkpoint_time), now);
}

double AcknowledgedWorkSinceCheckpoint(const Job& job, absl::Time now) {
  if (job.ranks.empty() || job.start_time == absl::InfinitePast()) return 0;
  const absl::Time since = std::max(job.start_time, job.last_checkpoint_time);
  bool steps = false;
  absl::Time last_beyond = since;
  for (const RankRecord& r : job.ranks) {
    if (r.progress.step < 0) continue;
    steps = true;
    if (r.progress.step > job.last_checkpoint_step) last_beyond = std::max(last_beyond, r.step_time);
  }
  if (!steps) return WorkSinceCheckpoint(job, now);
  return RankSecondsSince(job, since, std::min(now, last_beyond));
}

double GpuSecondsUsed(const Job& job, absl::Time now) {
  return job.gpu_seconds + (job.HasLiveRanks() ? AttemptGpuSeconds(job, now) : 0);
}

double AttemptBorrowedGpuSeconds(const Job& job, absl::Time now) {
  if (job.ranks.empty()) return 0;
  const double gpus = static_cast<double>(job.Gpus());  // > 0: a rank holds one at least
  const double borrowed = std::min<double>(job.attempt_borrowed_gpus, gpus);
  return AttemptGpuSeconds(job, now) * borrowed / gpus;
}

double GpuSecondsBorrowed(const Job& job, absl::Time now) {
  return job.gpu_seconds_borrowed + (job.HasLiveRanks() ? AttemptBorrowedGpuSeconds(job, now) : 0);
}

}  // namespace sublet::coordinator

#include "protocols/progress.h"

#include <algorithm>

namespace sublet::protocols {

void MergeProgress(Progress& into, const Progress& report) {
  if (report.step >= 0) {
    into.step = report.step;
    into.loss = report.loss;
    into.tokens_per_s = report.tokens_per_s;
  }
  if (report.checkpoint_step > into.checkpoint_step) {
    into.checkpoint_step = report.checkpoint_step;
    into.checkpoint_bytes = report.checkpoint_bytes > 0 ? report.checkpoint_bytes : 0;
    into.checkpoint_persist_s = report.checkpoint_persist_s > 0 ? report.checkpoint_persist_s : 0;
  }
  into.time_unix_ms = std::max(into.time_unix_ms, report.time_unix_ms);
}

}  // namespace sublet::protocols

#include "worker/runtime/progress.h"

#include "common/log.h"

namespace sublet::worker {

ProgressReporter::ProgressReporter(absl::Duration interval)
    : context_(1), client_(ControlClient::FromEnvironment(context_)), interval_(interval) {}

void ProgressReporter::Report(int64_t step, double loss, double tokens_per_s,
                              int64_t checkpoint_step, bool force) {
  if (client_ == nullptr) return;
  const absl::Time now = absl::Now();
  if (!force && now - last_ < interval_) return;
  last_ = now;
  protocols::Progress p;
  p.step = step;
  p.loss = loss;
  p.tokens_per_s = tokens_per_s;
  p.checkpoint_step = checkpoint_step;
  absl::Status s = client_->ReportProgress(p);
  if (!s.ok() && !warned_) {
    warned_ = true;
    Log(LogLevel::kWarn, "progress_report_failed", {{"error", std::string(s.message())}});
  }
}

}  // namespace sublet::worker

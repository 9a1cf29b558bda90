#include "worker/runtime/progress.h"

#include "common/log.h"

namespace sublet::worker {

ProgressReporter::ProgressReporter(absl::Duration interval) : context_(1), interval_(interval) {
  absl::StatusOr<std::unique_ptr<ControlClient>> client = ControlClient::FromEnvironment(context_);
  if (client.ok()) {
    client_ = *std::move(client);
  } else {
    Log(LogLevel::kWarn, "progress_reporting_off",
        {{"error", std::string(client.status().message())}});
  }
}

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
  p.checkpoint_bytes = checkpoint_bytes_.load();
  p.checkpoint_persist_s = checkpoint_persist_s_.load();
  absl::Status s = client_->ReportProgress(p);
  if (!s.ok() && !warned_) {
    warned_ = true;
    Log(LogLevel::kWarn, "progress_report_failed", {{"error", std::string(s.message())}});
  }
}

void ProgressReporter::SetCheckpointStats(int64_t bytes, double persist_s) {
  checkpoint_bytes_.store(bytes);
  checkpoint_persist_s_.store(persist_s);
}

bool ProgressReporter::NoticeReceived() {
  if (client_ == nullptr || noticed_) return noticed_;
  protocols::PreemptNotice notice;
  if (client_->PollNotice(&notice)) {
    noticed_ = true;
    Log(LogLevel::kInfo, "preemption_notice", {{"source", "control"}, {"reason", notice.reason}});
  }
  return noticed_;
}

}  // namespace sublet::worker

// Progress reports from a rank to its worker's control endpoint
// (worker/control_client.h), throttled so a fast loop does not flood the
// worker: a report goes out when `force` is set (a checkpoint committed, the
// run ends) or when `interval` has passed since the last one. Under mpirun
// there is no endpoint and Report does nothing. Reports are best-effort: a
// failure is logged once and never stops training. Thread-compatible, except
// SetCheckpointStats, which the checkpoint writer thread may call.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>

#include <zmq.hpp>

#include "absl/time/time.h"
#include "worker/control_client.h"

namespace sublet::worker {

class ProgressReporter {
 public:
  // Reads SUBLET_CONTROL and friends; reporting is off without them, and off
  // with a warning logged when they are malformed.
  explicit ProgressReporter(absl::Duration interval = absl::Seconds(1));

  bool enabled() const { return client_ != nullptr; }
  // checkpoint_step: the newest committed checkpoint step (-1: none), which
  // the coordinator stores as the job's last checkpoint.
  void Report(int64_t step, double loss, double tokens_per_s, int64_t checkpoint_step, bool force);
  // The newest committed checkpoint's size and persist time, sent with every
  // report (the coordinator estimates a reclaimed job's save time from them).
  void SetCheckpointStats(int64_t bytes, double persist_s);
  // True once the worker has sent a preemption notice on the control
  // endpoint (it also sends SIGUSR1); non-blocking.
  bool NoticeReceived();

 private:
  zmq::context_t context_;
  std::unique_ptr<ControlClient> client_;
  absl::Duration interval_;
  absl::Time last_ = absl::InfinitePast();
  bool warned_ = false;
  bool noticed_ = false;
  std::atomic<int64_t> checkpoint_bytes_{0};
  std::atomic<double> checkpoint_persist_s_{0};
};

}  // namespace sublet::worker

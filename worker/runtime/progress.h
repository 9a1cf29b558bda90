// Progress reports from a rank to its worker's control endpoint
// (worker/control_client.h), throttled so a fast loop does not flood the
// worker: a report goes out when `force` is set (a checkpoint committed, the
// run ends) or when `interval` has passed since the last one. Under mpirun
// there is no endpoint and Report does nothing. Reports are best-effort: a
// failure is logged once and never stops training. Thread-compatible.
#pragma once

#include <cstdint>
#include <memory>

#include <zmq.hpp>

#include "absl/time/time.h"
#include "worker/control_client.h"

namespace sublet::worker {

class ProgressReporter {
 public:
  // Reads SUBLET_CONTROL and friends; reporting is off without them.
  explicit ProgressReporter(absl::Duration interval = absl::Seconds(1));

  bool enabled() const { return client_ != nullptr; }
  // checkpoint_step: the newest committed checkpoint step (-1: none), which
  // the coordinator stores as the job's last checkpoint.
  void Report(int64_t step, double loss, double tokens_per_s, int64_t checkpoint_step, bool force);

 private:
  zmq::context_t context_;
  std::unique_ptr<ControlClient> client_;
  absl::Duration interval_;
  absl::Time last_ = absl::InfinitePast();
  bool warned_ = false;
};

}  // namespace sublet::worker

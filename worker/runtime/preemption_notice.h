// The preemption notice of one rank: a flag that a signal (SIGUSR1 or
// SIGTERM, DESIGN "Preemption and exit codes") or a control message sets,
// and the training loop reads at each step boundary. The loop then agrees on
// it with the other ranks (any rank noticed => all act), saves a checkpoint
// and exits kExitPreempted (common/exit_codes.h).
//
// Request() is async-signal-safe (one lock-free atomic store) and may be
// called from any thread, any number of times: a second notice while the
// checkpoint is being written changes nothing. Requested() never clears.
//
// Signal handlers are process-wide, so at most one PreemptionNotice may have
// them installed at a time (the handler finds it through one atomic pointer,
// the only global here); the destructor restores the previous handlers.
#pragma once

#include <atomic>
#include <csignal>

#include "absl/status/status.h"

namespace sublet::worker {

class PreemptionNotice {
 public:
  PreemptionNotice() = default;
  ~PreemptionNotice();
  PreemptionNotice(const PreemptionNotice&) = delete;
  PreemptionNotice& operator=(const PreemptionNotice&) = delete;

  // Routes SIGUSR1 and SIGTERM to Request(). FailedPrecondition when another
  // notice has them installed.
  absl::Status InstallSignalHandlers();

  void Request() { requested_.store(true, std::memory_order_relaxed); }
  bool Requested() const { return requested_.load(std::memory_order_relaxed); }

 private:
  static_assert(std::atomic<bool>::is_always_lock_free);
  std::atomic<bool> requested_{false};
  bool installed_ = false;
  struct sigaction previous_usr1_ {};
  struct sigaction previous_term_ {};
};

}  // namespace sublet::worker

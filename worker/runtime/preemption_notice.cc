#include "worker/runtime/preemption_notice.h"

#include <cerrno>
#include <cstring>
#include <string>

namespace sublet::worker {
namespace {

std::atomic<PreemptionNotice*> g_installed{nullptr};

extern "C" void OnPreemptionSignal(int) {
  if (PreemptionNotice* n = g_installed.load()) n->Request();
}

}  // namespace

absl::Status PreemptionNotice::InstallSignalHandlers() {
  if (installed_) return absl::OkStatus();
  PreemptionNotice* expected = nullptr;
  if (!g_installed.compare_exchange_strong(expected, this)) {
    return absl::FailedPreconditionError("preemption: another notice has the signal handlers");
  }
  struct sigaction action {};
  action.sa_handler = OnPreemptionSignal;
  sigemptyset(&action.sa_mask);
  action.sa_flags = SA_RESTART;
  if (sigaction(SIGUSR1, &action, &previous_usr1_) != 0 ||
      sigaction(SIGTERM, &action, &previous_term_) != 0) {
    const int err = errno;
    g_installed.store(nullptr);
    return absl::InternalError(std::string("preemption: sigaction: ") + std::strerror(err));
  }
  installed_ = true;
  return absl::OkStatus();
}

PreemptionNotice::~PreemptionNotice() {
  if (!installed_) return;
  sigaction(SIGUSR1, &previous_usr1_, nullptr);
  sigaction(SIGTERM, &previous_term_, nullptr);
  g_installed.store(nullptr);
}

}  // namespace sublet::worker

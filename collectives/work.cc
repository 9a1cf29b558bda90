#include "collectives/work.h"

#include "absl/strings/str_cat.h"

namespace sublet::collectives {

absl::Status Work::Wait(absl::Duration timeout) {
  std::unique_lock<std::mutex> lock(mu_);
  auto done = [this] { return done_; };
  if (timeout == absl::InfiniteDuration()) {
    cv_.wait(lock, done);
  } else if (!cv_.wait_for(lock, absl::ToChronoNanoseconds(timeout), done)) {
    return absl::DeadlineExceededError(
        absl::StrCat(op_, ": not complete after ", absl::FormatDuration(timeout), " (Work::Wait)"));
  }
  return status_;
}

bool Work::Test() {
  std::lock_guard<std::mutex> lock(mu_);
  return done_;
}

void Work::Complete(absl::Status status) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    status_ = std::move(status);
    done_ = true;
  }
  cv_.notify_all();
}

}  // namespace sublet::collectives

// A handle on one asynchronous operation.
// Thread-safety: all methods may be called from any thread.
#pragma once

#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>

#include "absl/status/status.h"
#include "absl/time/time.h"

namespace sublet::collectives {

class Work {
 public:
  explicit Work(std::string op) : op_(std::move(op)) {}

  // Blocks until the operation completes and returns its status, or returns
  // DeadlineExceeded if it has not completed within `timeout` (the operation
  // itself keeps running until it completes or its own deadline passes).
  absl::Status Wait(absl::Duration timeout = absl::InfiniteDuration());
  // True once the operation has completed (successfully or not).
  bool Test();
  const std::string& op() const { return op_; }

  // Called once by the executor.
  void Complete(absl::Status status);

 private:
  const std::string op_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool done_ = false;          // guarded by mu_
  absl::Status status_;        // guarded by mu_
};

using WorkPtr = std::shared_ptr<Work>;

}  // namespace sublet::collectives

// Runs one communicator's operations one at a time in issue order. Async
// submissions go to a worker thread (started on first use); a blocking call
// finding nothing queued or running executes on the caller's thread.
// Thread-safety: all methods may be called from any thread.
#pragma once

#include <deque>
#include <functional>
#include <mutex>
#include <condition_variable>
#include <string>
#include <thread>

#include "absl/status/status.h"
#include "collectives/work.h"

namespace sublet::collectives::internal {

class Executor {
 public:
  using Fn = std::function<absl::Status()>;
  Executor() = default;
  ~Executor();  // drains the queue, then joins the worker

  WorkPtr Submit(std::string op, Fn fn);
  absl::Status Run(std::string op, Fn fn);

 private:
  struct Item {
    WorkPtr work;
    Fn fn;
  };
  void Loop();

  std::mutex mu_;
  std::condition_variable cv_;
  std::condition_variable idle_cv_;
  std::deque<Item> queue_;  // guarded by mu_
  bool busy_ = false;       // guarded by mu_: an operation is executing
  bool stop_ = false;       // guarded by mu_
  std::thread worker_;      // started under mu_ on first Submit
};

}  // namespace sublet::collectives::internal

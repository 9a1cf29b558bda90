#include "collectives/internal/executor.h"

namespace sublet::collectives::internal {

Executor::~Executor() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (worker_.joinable()) worker_.join();
}

WorkPtr Executor::Submit(std::string op, Fn fn) {
  auto work = std::make_shared<Work>(std::move(op));
  {
    std::lock_guard<std::mutex> lock(mu_);
    queue_.push_back(Item{work, std::move(fn)});
    if (!worker_.joinable()) worker_ = std::thread([this] { Loop(); });
  }
  cv_.notify_one();
  return work;
}

absl::Status Executor::Run(std::string op, Fn fn) {
  {
    std::unique_lock<std::mutex> lock(mu_);
    if (!busy_ && queue_.empty()) {
      busy_ = true;
      lock.unlock();
      absl::Status status = fn();
      lock.lock();
      busy_ = false;
      lock.unlock();
      cv_.notify_all();
      return status;
    }
  }
  return Submit(std::move(op), std::move(fn))->Wait();
}

void Executor::Loop() {
  std::unique_lock<std::mutex> lock(mu_);
  while (true) {
    cv_.wait(lock, [this] { return (!queue_.empty() && !busy_) || (stop_ && queue_.empty()); });
    if (queue_.empty()) return;  // stopping
    Item item = std::move(queue_.front());
    queue_.pop_front();
    busy_ = true;
    lock.unlock();
    absl::Status status = item.fn();
    item.work->Complete(status);
    lock.lock();
    busy_ = false;
  }
}

}  // namespace sublet::collectives::internal

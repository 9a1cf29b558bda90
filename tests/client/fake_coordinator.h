// A stand-in coordinator for client tests: a CURVE protocols::ServerChannel
// on tcp://127.0.0.1:0 (with a fresh key pair) served by its own thread, answering every request with
// whatever body the test's handler returns.
#pragma once

#include <atomic>
#include <functional>
#include <future>
#include <mutex>
#include <string>
#include <thread>
#include <vector>
#include <zmq.hpp>

#include "protocols/curve.h"
#include "protocols/messages.h"

namespace sublet::client::testing {

class FakeCoordinator {
 public:
  using Handler = std::function<protocols::Body(const protocols::Envelope& request)>;

  explicit FakeCoordinator(Handler handler);
  ~FakeCoordinator();

  const std::string& endpoint() const { return endpoint_; }
  const std::string& public_key() const { return keys_.public_key; }
  // Every request received so far.
  std::vector<protocols::Envelope> requests() const;

 private:
  void Serve();

  Handler handler_;
  protocols::CurveKeyPair keys_;
  zmq::context_t context_;
  std::promise<std::string> bound_;  // the endpoint, once bound
  std::string endpoint_;
  std::atomic<bool> stop_{false};
  mutable std::mutex mu_;
  std::vector<protocols::Envelope> requests_;  // guarded by mu_
  std::thread thread_;
};

}  // namespace sublet::client::testing

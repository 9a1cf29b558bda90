#include "tests/client/fake_coordinator.h"

#include <chrono>
#include <future>

#include "protocols/channel.h"

namespace sublet::client::testing {

FakeCoordinator::FakeCoordinator(Handler handler)
    : handler_(std::move(handler)), keys_(protocols::NewCurveKeyPair()), context_(1) {
  std::future<std::string> endpoint = bound_.get_future();
  thread_ = std::thread([this] { Serve(); });
  endpoint_ = endpoint.get();
}

FakeCoordinator::~FakeCoordinator() {
  stop_ = true;
  thread_.join();
}

std::vector<protocols::Envelope> FakeCoordinator::requests() const {
  std::lock_guard<std::mutex> lock(mu_);
  return requests_;
}

// The server socket is created, bound and used on this thread only.
void FakeCoordinator::Serve() {
  protocols::ServerChannel server(context_);
  absl::Status status = server.EnableCurve(keys_);
  if (status.ok()) status = server.Bind("tcp://127.0.0.1:0");
  bound_.set_value(status.ok() ? server.endpoint() : "bind failed");
  if (!status.ok()) return;
  while (!stop_) {
    zmq::pollitem_t item{server.socket().handle(), 0, ZMQ_POLLIN, 0};
    zmq::poll(&item, 1, std::chrono::milliseconds(20));
    while (std::optional<protocols::Incoming> incoming = server.TryReceive()) {
      if (!incoming->envelope.ok()) continue;
      {
        std::lock_guard<std::mutex> lock(mu_);
        requests_.push_back(*incoming->envelope);
      }
      protocols::Envelope reply;
      reply.request_id = incoming->envelope->request_id;
      reply.body = handler_(*incoming->envelope);
      (void)server.Send(incoming->peer, reply);
    }
  }
}

}  // namespace sublet::client::testing

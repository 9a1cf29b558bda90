// ZeroMQ transport for Envelopes. Each socket belongs to the thread that uses
// it (ZeroMQ sockets are not thread-safe); these classes add no locking.
//
//   ServerChannel  ROUTER, bound by the coordinator; replies go to the peer
//                  identity a request came from.
//   ClientChannel  DEALER, connected by clients and workers. ZeroMQ reconnects
//                  by itself; Call() adds request ids and timeouts on top.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include <zmq.hpp>

#include "common/status.h"
#include "protocols/codec.h"
#include "protocols/messages.h"

namespace sublet::protocols {

// One message received on a server channel.
struct Incoming {
  std::string peer;                   // ZeroMQ routing id of the sender
  absl::StatusOr<Envelope> envelope;  // decode error if the frame was bad
  size_t frame_bytes = 0;
};

class ServerChannel {
 public:
  ServerChannel(zmq::context_t& context, CodecLimits limits = {});
  // Binds, e.g. "tcp://127.0.0.1:7700". Unavailable when the address is taken.
  absl::Status Bind(const std::string& endpoint);
  // The endpoint actually bound (resolves port 0 / wildcards).
  std::string endpoint() const;

  // Non-blocking: the next message, or nullopt when none is queued.
  std::optional<Incoming> TryReceive();
  // Sends without blocking; a peer that has gone away is not an error for
  // the server (ZeroMQ drops the message), but a full queue is Unavailable.
  absl::Status Send(const std::string& peer, const Envelope& envelope);

  zmq::socket_t& socket() { return socket_; }

 private:
  zmq::socket_t socket_;
  CodecLimits limits_;
};

class ClientChannel {
 public:
  ClientChannel(zmq::context_t& context, std::string endpoint, CodecLimits limits = {});

  // Sends a request and waits for the reply with the same request id (assigned
  // here), discarding stray replies to earlier, timed-out requests. Errors:
  // Unavailable when nothing answered within `timeout` (naming the endpoint),
  // or the decode error of a bad reply. An ErrorReply is returned as a normal
  // envelope; use StatusFromReply.
  absl::StatusOr<Envelope> Call(Envelope request, std::chrono::milliseconds timeout);

  // Asynchronous use (the worker): fire-and-forget send, which drops the
  // message with Unavailable when no connection to the coordinator is up,
  // and non-blocking receive.
  absl::Status Send(const Envelope& envelope);
  std::optional<absl::StatusOr<Envelope>> TryReceive();

  zmq::socket_t& socket() { return *socket_; }
  const std::string& endpoint() const { return endpoint_; }

 private:
  void Reset();  // a fresh socket, so a late reply cannot poison the next call

  zmq::context_t& context_;
  std::string endpoint_;
  CodecLimits limits_;
  std::unique_ptr<zmq::socket_t> socket_;
  uint64_t next_request_id_;
  absl::Status connect_status_;  // a malformed endpoint fails every call with this
};

}  // namespace sublet::protocols

// ZeroMQ transport for Envelopes. Each socket belongs to the thread that uses
// it (ZeroMQ sockets are not thread-safe); these classes add no locking.
//
//   ServerChannel  ROUTER, bound by the coordinator; replies go to the peer
//                  identity a request came from.
//   ClientChannel  DEALER, connected by clients and workers. ZeroMQ reconnects
//                  by itself; Call() adds request ids and timeouts on top.
//
// Security (protocols/curve.h): a server with EnableCurve is a CURVE server
// whose ZAP handler labels every admitted connection; each Incoming carries
// that label (`user_id`). A client given the server's public key is a CURVE
// client (with its own key pair, or an ephemeral one) and watches its
// handshakes, so that a server with another key fails a call at once
// (Unavailable, naming the key) instead of after the timeout. Without either, the channel
// is plain ZeroMQ (tests and the benchmark's baseline only).
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include <zmq.hpp>

#include "common/status.h"
#include "protocols/codec.h"
#include "protocols/curve.h"
#include "protocols/messages.h"

namespace sublet::protocols {

// One message received on a server channel.
struct Incoming {
  std::string peer;                   // ZeroMQ routing id of the sender
  absl::StatusOr<Envelope> envelope;  // decode error if the frame was bad
  size_t frame_bytes = 0;
  // The ZAP handler's label for the connection ("curve:<client key>"); empty
  // on a plain channel, or when the connection was admitted without one.
  std::string user_id;
};

// How a client connects: to a CURVE server with this public key (empty:
// plain), as this key pair (nullopt: an ephemeral one made per channel).
struct ClientSecurity {
  std::string server_key;
  std::optional<CurveKeyPair> own_keys;
};

// True for the Unavailable a ClientChannel returns when a CURVE handshake
// failed (wrong pinned key, refused key), as opposed to no answer at all.
bool IsHandshakeFailure(const absl::Status& status);

class ServerChannel {
 public:
  ServerChannel(zmq::context_t& context, CodecLimits limits = {});
  ~ServerChannel();
  // Before Bind: makes the socket a CURVE server with `keys` and starts the
  // ZAP handler that decides who may connect (one per ZeroMQ context).
  absl::Status EnableCurve(const CurveKeyPair& keys, ZapPolicy policy = AdmitCurveClients,
                           std::function<void(const ZapRequest&)> on_refused = nullptr);
  bool curve() const { return zap_ != nullptr; }
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
  zmq::context_t& context_;
  zmq::socket_t socket_;
  CodecLimits limits_;
  std::unique_ptr<ZapHandler> zap_;
};

class ClientChannel {
 public:
  ClientChannel(zmq::context_t& context, std::string endpoint, CodecLimits limits = {},
                ClientSecurity security = {});
  ~ClientChannel();

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

  // Unavailable, saying why, once a CURVE handshake with the endpoint
  // failed and none has succeeded since; OK otherwise (also while nothing has
  // connected yet). Reads the socket's pending monitor events.
  absl::Status HandshakeStatus();
  // True once a handshake has succeeded on the current socket.
  bool handshake_succeeded() const { return handshake_succeeded_; }

  zmq::socket_t& socket() { return *socket_; }
  const std::string& endpoint() const { return endpoint_; }

 private:
  void Reset();  // a fresh socket, so a late reply cannot poison the next call
  // Polls the socket for `events` and the monitor for handshake news until
  // `deadline`: true when the socket is ready; false on timeout or when a
  // handshake failed (then HandshakeStatus() says why).
  bool WaitReady(short events, std::chrono::steady_clock::time_point deadline);
  void DrainMonitor();

  zmq::context_t& context_;
  std::string endpoint_;
  CodecLimits limits_;
  std::unique_ptr<zmq::socket_t> socket_;
  ClientSecurity security_;
  std::unique_ptr<zmq::socket_t> monitor_;  // PAIR reading the socket's events
  uint64_t next_request_id_;
  absl::Status connect_status_;  // a malformed endpoint fails every call with this
  bool connected_ = false;  // TCP is up and its handshake has not finished
  bool handshake_succeeded_ = false;
  absl::Status handshake_status_;
};

}  // namespace sublet::protocols

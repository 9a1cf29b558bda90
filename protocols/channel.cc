#include "protocols/channel.h"

#include <fmt/format.h>

#include <atomic>
#include <cstring>
#include <random>
#include <vector>
#include <zmq_addon.hpp>

#include "absl/strings/cord.h"

#include "common/duration.h"

namespace sublet::protocols {
namespace {

using Clock = std::chrono::steady_clock;

zmq::message_t ToMessage(const std::string& bytes) {
  return zmq::message_t(bytes.data(), bytes.size());
}

std::span<const uint8_t> AsSpan(const zmq::message_t& m) {
  return std::span<const uint8_t>(static_cast<const uint8_t*>(m.data()), m.size());
}

// Receives one whole multipart message without blocking; empty when none is
// queued. Errors other than "nothing queued" (EAGAIN) throw zmq::error_t.
std::vector<zmq::message_t> ReceiveAll(zmq::socket_t& socket) {
  std::vector<zmq::message_t> parts;
  if (!zmq::recv_multipart(socket, std::back_inserter(parts), zmq::recv_flags::dontwait))
    parts.clear();
  return parts;
}

// True when `socket` has `events` pending before `deadline`.
bool WaitFor(zmq::socket_t& socket, short events, Clock::time_point deadline) {
  zmq::pollitem_t item{socket.handle(), 0, events, 0};
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
  if (left.count() < 0) left = std::chrono::milliseconds(0);
  return zmq::poll(&item, 1, left) > 0;
}

uint64_t RandomSeed() {
  std::random_device device;
  return (static_cast<uint64_t>(device()) << 32) | device();
}

std::atomic<uint64_t> g_next_monitor{1};

// The User-Id the ZAP handler gave the connection a message came on.
std::string UserIdOf(zmq::message_t& message) {
  const char* value = zmq_msg_gets(message.handle(), "User-Id");
  return value == nullptr ? "" : value;
}

std::string FormatTimeout(std::chrono::milliseconds timeout) {
  return sublet::FormatDuration(absl::Milliseconds(timeout.count()));
}

constexpr char kHandshakePayload[] = "sublet.dev/handshake-failed";

absl::Status HandshakeError(std::string message) {
  absl::Status status = absl::UnavailableError(std::move(message));
  status.SetPayload(kHandshakePayload, absl::Cord("1"));
  return status;
}

}  // namespace

bool IsHandshakeFailure(const absl::Status& status) {
  return status.GetPayload(kHandshakePayload).has_value();
}

// ---- ServerChannel -----------------------------------------------------------

ServerChannel::ServerChannel(zmq::context_t& context, CodecLimits limits)
    : context_(context), socket_(context, zmq::socket_type::router), limits_(limits) {
  socket_.set(zmq::sockopt::maxmsgsize, static_cast<int64_t>(limits_.max_frame_bytes));
  socket_.set(zmq::sockopt::linger, 0);
  socket_.set(zmq::sockopt::router_handover, 1);  // a restarted worker may reuse its identity
}

ServerChannel::~ServerChannel() {
  // The socket closes before the ZAP handler it may still be asking.
  socket_.close();
  zap_.reset();
}

absl::Status ServerChannel::EnableCurve(const CurveKeyPair& keys, ZapPolicy policy,
                                        std::function<void(const ZapRequest&)> on_refused) {
  SUBLET_ASSIGN_OR_RETURN(zap_, ZapHandler::Start(context_, std::move(policy),
                                                  std::move(on_refused)));
  try {
    socket_.set(zmq::sockopt::curve_server, 1);
    socket_.set(zmq::sockopt::curve_secretkey, keys.secret_key);
    // A ZAP domain makes libzmq ask the handler about every handshake.
    socket_.set(zmq::sockopt::zap_domain, "sublet");
  } catch (const zmq::error_t& e) {
    zap_.reset();
    return absl::InvalidArgumentError(fmt::format("cannot enable CURVE: {}", e.what()));
  }
  return absl::OkStatus();
}

absl::Status ServerChannel::Bind(const std::string& endpoint) {
  try {
    socket_.bind(endpoint);
  } catch (const zmq::error_t& e) {
    return absl::UnavailableError(fmt::format("cannot listen on {}: {}", endpoint, e.what()));
  }
  return absl::OkStatus();
}

std::string ServerChannel::endpoint() const { return socket_.get(zmq::sockopt::last_endpoint); }

std::optional<Incoming> ServerChannel::TryReceive() {
  std::vector<zmq::message_t> parts;
  try {
    parts = ReceiveAll(socket_);
  } catch (const zmq::error_t&) {
    return std::nullopt;  // EINTR or a closing context: nothing to hand out
  }
  if (parts.empty()) return std::nullopt;
  Incoming in;
  in.peer = parts[0].to_string();
  if (parts.size() > 1) in.user_id = UserIdOf(parts[1]);
  for (size_t i = 1; i < parts.size(); ++i) in.frame_bytes += parts[i].size();
  if (parts.size() != 2) {
    in.envelope = absl::InvalidArgumentError(
        fmt::format("malformed message: expected 1 frame from the peer, got {}", parts.size() - 1));
    return in;
  }
  in.envelope = Decode(AsSpan(parts[1]), limits_);
  return in;
}

absl::Status ServerChannel::Send(const std::string& peer, const Envelope& envelope) {
  std::string payload = Encode(envelope);
  try {
    if (!socket_.send(ToMessage(peer), zmq::send_flags::sndmore | zmq::send_flags::dontwait) ||
        !socket_.send(ToMessage(payload), zmq::send_flags::dontwait)) {
      return absl::UnavailableError("send queue to the peer is full");
    }
  } catch (const zmq::error_t& e) {
    return absl::UnavailableError(fmt::format("send failed: {}", e.what()));
  }
  return absl::OkStatus();
}

// ---- ClientChannel -----------------------------------------------------------

ClientChannel::ClientChannel(zmq::context_t& context, std::string endpoint, CodecLimits limits,
                             ClientSecurity security)
    : context_(context),
      endpoint_(std::move(endpoint)),
      limits_(limits),
      security_(std::move(security)),
      next_request_id_(RandomSeed()) {
  if (!security_.server_key.empty() && !security_.own_keys) security_.own_keys = NewCurveKeyPair();
  Reset();
}

ClientChannel::~ClientChannel() {
  monitor_.reset();
  socket_.reset();
}

void ClientChannel::Reset() {
  monitor_.reset();
  socket_ = std::make_unique<zmq::socket_t>(context_, zmq::socket_type::dealer);
  connected_ = false;
  handshake_succeeded_ = false;
  handshake_status_ = absl::OkStatus();
  socket_->set(zmq::sockopt::immediate, 1);  // never queue for a peer not yet connected
  socket_->set(zmq::sockopt::linger, 0);
  socket_->set(zmq::sockopt::reconnect_ivl, 100);
  socket_->set(zmq::sockopt::reconnect_ivl_max, 1000);
  socket_->set(zmq::sockopt::maxmsgsize, static_cast<int64_t>(limits_.max_frame_bytes));
  connect_status_ = absl::OkStatus();
  try {
    if (!security_.server_key.empty()) {
      socket_->set(zmq::sockopt::curve_serverkey, security_.server_key);
      socket_->set(zmq::sockopt::curve_publickey, security_.own_keys->public_key);
      socket_->set(zmq::sockopt::curve_secretkey, security_.own_keys->secret_key);
      // Handshake news, so a server with another key fails a call at once.
      const std::string monitor =
          fmt::format("inproc://sublet-client-monitor-{}", g_next_monitor++);
      if (zmq_socket_monitor(socket_->handle(), monitor.c_str(),
                             ZMQ_EVENT_CONNECTED | ZMQ_EVENT_DISCONNECTED |
                                 ZMQ_EVENT_HANDSHAKE_SUCCEEDED |
                                 ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL |
                                 ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL |
                                 ZMQ_EVENT_HANDSHAKE_FAILED_AUTH) != 0) {
        throw zmq::error_t();
      }
      monitor_ = std::make_unique<zmq::socket_t>(context_, zmq::socket_type::pair);
      monitor_->set(zmq::sockopt::linger, 0);
      monitor_->connect(monitor);
    }
    socket_->connect(endpoint_);
  } catch (const zmq::error_t& e) {
    connect_status_ =
        absl::InvalidArgumentError(fmt::format("cannot connect to {}: {}", endpoint_, e.what()));
  }
}

absl::StatusOr<Envelope> ClientChannel::Call(Envelope request, std::chrono::milliseconds timeout) {
  SUBLET_RETURN_IF_ERROR(connect_status_);
  const Clock::time_point deadline = Clock::now() + timeout;
  request.version = kProtocolVersion;
  request.request_id = next_request_id_++;
  try {
    // With ZMQ_IMMEDIATE a send fails until the connection is up, which takes
    // a moment even when the coordinator listens; wait for it up to the deadline.
    if (!WaitReady(ZMQ_POLLOUT, deadline) ||
        !socket_->send(ToMessage(Encode(request)), zmq::send_flags::dontwait)) {
      absl::Status failed = HandshakeStatus();
      Reset();
      if (!failed.ok()) return failed;
      return absl::UnavailableError(fmt::format("coordinator at {} is not reachable", endpoint_));
    }
    while (WaitReady(ZMQ_POLLIN, deadline)) {
      std::vector<zmq::message_t> parts = ReceiveAll(*socket_);
      if (parts.size() != 1) continue;  // not something a ServerChannel sends
      absl::StatusOr<Envelope> reply = Decode(AsSpan(parts[0]), limits_);
      if (reply.ok() && reply->request_id != request.request_id) continue;  // stale reply
      return reply;
    }
  } catch (const zmq::error_t& e) {
    Reset();
    return absl::UnavailableError(fmt::format("call to {} failed: {}", endpoint_, e.what()));
  }
  absl::Status failed = HandshakeStatus();
  Reset();
  if (!failed.ok()) return failed;
  return absl::UnavailableError(
      fmt::format("no reply from {} within {}", endpoint_, FormatTimeout(timeout)));
}

absl::Status ClientChannel::Send(const Envelope& envelope) {
  SUBLET_RETURN_IF_ERROR(connect_status_);
  try {
    if (!socket_->send(ToMessage(Encode(envelope)), zmq::send_flags::dontwait)) {
      return absl::UnavailableError(fmt::format("coordinator at {} is not reachable", endpoint_));
    }
  } catch (const zmq::error_t& e) {
    return absl::UnavailableError(fmt::format("send to {} failed: {}", endpoint_, e.what()));
  }
  return absl::OkStatus();
}

std::optional<absl::StatusOr<Envelope>> ClientChannel::TryReceive() {
  std::vector<zmq::message_t> parts;
  try {
    parts = ReceiveAll(*socket_);
  } catch (const zmq::error_t&) {
    return std::nullopt;
  }
  if (parts.empty()) return std::nullopt;
  if (parts.size() != 1) {
    return absl::StatusOr<Envelope>(absl::InvalidArgumentError(fmt::format(
        "malformed message: expected 1 frame from {}, got {}", endpoint_, parts.size())));
  }
  return Decode(AsSpan(parts[0]), limits_);
}

bool ClientChannel::WaitReady(short events, Clock::time_point deadline) {
  if (!monitor_) return WaitFor(*socket_, events, deadline);
  while (true) {
    DrainMonitor();
    if (!handshake_status_.ok()) return false;
    zmq::pollitem_t items[2] = {{socket_->handle(), 0, events, 0},
                                {monitor_->handle(), 0, ZMQ_POLLIN, 0}};
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() < 0) left = std::chrono::milliseconds(0);
    if (zmq::poll(items, 2, left) == 0) return false;
    if (items[0].revents & events) return true;
  }
}

void ClientChannel::DrainMonitor() {
  if (!monitor_) return;
  while (true) {
    std::vector<zmq::message_t> parts;
    try {
      if (!zmq::recv_multipart(*monitor_, std::back_inserter(parts), zmq::recv_flags::dontwait)) {
        return;
      }
    } catch (const zmq::error_t&) {
      return;
    }
    if (parts.empty() || parts[0].size() < 6) continue;
    uint16_t event = 0;
    uint32_t value = 0;
    memcpy(&event, parts[0].data(), 2);
    memcpy(&value, static_cast<const char*>(parts[0].data()) + 2, 4);
    const std::string key_hint = fmt::format(
        "the coordinator's public key is not the pinned {} (check --coordinator-key, "
        "SUBLET_COORDINATOR_KEY or the context file), or it is not a Sublet coordinator",
        security_.server_key);
    switch (event) {
      case ZMQ_EVENT_CONNECTED:
        connected_ = true;
        break;
      case ZMQ_EVENT_HANDSHAKE_SUCCEEDED:
        connected_ = false;
        handshake_succeeded_ = true;
        handshake_status_ = absl::OkStatus();
        break;
      case ZMQ_EVENT_DISCONNECTED:
        // Closed before the handshake finished: the server could not open
        // our HELLO, which it can only with the secret of the pinned key.
        if (connected_) {
          handshake_status_ = HandshakeError(fmt::format(
              "the encrypted handshake with {} was refused: the server closed the connection; {}",
              endpoint_, key_hint));
        }
        connected_ = false;
        break;
      case ZMQ_EVENT_HANDSHAKE_FAILED_AUTH:
        connected_ = false;  // the disconnection that follows says nothing more
        handshake_status_ = HandshakeError(fmt::format(
            "{} refused this connection's key (ZAP status {})", endpoint_, value));
        break;
      case ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL:
      case ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL:
        connected_ = false;
        handshake_status_ = HandshakeError(fmt::format(
            "the encrypted handshake with {} failed (ZeroMQ error {:#x}): {}", endpoint_, value,
            key_hint));
        break;
      default:
        break;
    }
  }
}

absl::Status ClientChannel::HandshakeStatus() {
  DrainMonitor();
  return handshake_status_;
}

}  // namespace sublet::protocols

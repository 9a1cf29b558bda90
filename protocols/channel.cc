#include "protocols/channel.h"

#include <fmt/format.h>

#include <random>
#include <vector>
#include <zmq_addon.hpp>

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

std::string FormatTimeout(std::chrono::milliseconds timeout) {
  return sublet::FormatDuration(absl::Milliseconds(timeout.count()));
}

}  // namespace

// ---- ServerChannel -----------------------------------------------------------

ServerChannel::ServerChannel(zmq::context_t& context, CodecLimits limits)
    : socket_(context, zmq::socket_type::router), limits_(limits) {
  socket_.set(zmq::sockopt::maxmsgsize, static_cast<int64_t>(limits_.max_frame_bytes));
  socket_.set(zmq::sockopt::linger, 0);
  socket_.set(zmq::sockopt::router_handover, 1);  // a restarted worker may reuse its identity
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

ClientChannel::ClientChannel(zmq::context_t& context, std::string endpoint, CodecLimits limits)
    : context_(context),
      endpoint_(std::move(endpoint)),
      limits_(limits),
      next_request_id_(RandomSeed()) {
  Reset();
}

void ClientChannel::Reset() {
  socket_ = std::make_unique<zmq::socket_t>(context_, zmq::socket_type::dealer);
  socket_->set(zmq::sockopt::immediate, 1);  // never queue for a peer not yet connected
  socket_->set(zmq::sockopt::linger, 0);
  socket_->set(zmq::sockopt::reconnect_ivl, 100);
  socket_->set(zmq::sockopt::reconnect_ivl_max, 1000);
  socket_->set(zmq::sockopt::maxmsgsize, static_cast<int64_t>(limits_.max_frame_bytes));
  connect_status_ = absl::OkStatus();
  try {
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
    if (!WaitFor(*socket_, ZMQ_POLLOUT, deadline) ||
        !socket_->send(ToMessage(Encode(request)), zmq::send_flags::dontwait)) {
      Reset();
      return absl::UnavailableError(fmt::format("coordinator at {} is not reachable", endpoint_));
    }
    while (WaitFor(*socket_, ZMQ_POLLIN, deadline)) {
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
  Reset();
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

}  // namespace sublet::protocols

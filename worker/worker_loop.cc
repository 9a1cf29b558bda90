// Worker: the event loop. One thread polls the coordinator channel, the
// control socket and the launcher's exit wake-up fd, and runs the timers
// (heartbeat, SIGKILL deadlines) from the Clock; nothing here sleeps.
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <exception>
#include <type_traits>

#include "common/log.h"
#include "fmt/format.h"
#include "protocols/codec.h"
#include "worker/control_client.h"
#include "worker/worker.h"

namespace sublet::worker {

absl::Status Worker::Run(const std::atomic<bool>& stop) {
  SUBLET_RETURN_IF_ERROR(Prepare());
  absl::Status opened = OpenSockets();
  if (!opened.ok()) {
    CloseSockets();
    return opened;
  }
  Log(LogLevel::kInfo, "worker_started",
      {{"node", options_.node}, {"incarnation", table_.incarnation()},
       {"gpus", options_.gpus.size()}, {"coordinator", options_.coordinator},
       {"control", control_endpoint_}});
  SendReport();
  while (true) {
    if (stop.load() && !shutting_down_) BeginShutdown();
    if (shutting_down_ && table_.live_count() == 0) break;
    PollOnce();
    // Reaping on every wake-up, not only when the wake-up fd fired, costs a
    // waitpid per rank and makes a lost SIGCHLD harmless. Reaping before
    // reading the control socket means what a rank sent before it exited
    // (its last checkpoint) is read before its exit is reported.
    std::vector<ProcessExit> exits = launcher_.Reap();
    try {
      DrainCoordinator();
      DrainControl();
    } catch (const zmq::error_t& e) {  // EINTR from SIGCHLD is expected
      if (e.num() != EINTR) Log(LogLevel::kError, "receive_failed", {{"error", e.what()}});
    }
    HandleExits(exits);
    FireDueKills();
    if (report_due_ || clock_.Now() >= next_heartbeat_) SendReport();
  }
  SendReport();
  Log(LogLevel::kInfo, "worker_stopped", {{"node", options_.node}});
  CloseSockets();
  return absl::OkStatus();
}

absl::Status Worker::OpenSockets() {
  channel_ = std::make_unique<protocols::ClientChannel>(context_, options_.coordinator,
                                                        protocols::CodecLimits{},
                                                        options_.security);
  const std::string path = control_endpoint_.substr(std::string("ipc://").size());
  unlink(path.c_str());  // a stale socket file from a previous worker process
  try {
    control_ = std::make_unique<zmq::socket_t>(context_, zmq::socket_type::router);
    control_->set(zmq::sockopt::linger, 0);
    // Ranks are hostile: a frame bigger than any control message is dropped
    // by libzmq before it is buffered (the worker's memory is not theirs),
    // and few may queue.
    control_->set(zmq::sockopt::maxmsgsize,
                  static_cast<int64_t>(ControlLimits().max_frame_bytes));
    control_->set(zmq::sockopt::rcvhwm, 1000);
    control_->bind(control_endpoint_);
  } catch (const zmq::error_t& e) {
    return absl::UnavailableError(
        fmt::format("cannot bind control endpoint {}: {}", control_endpoint_, e.what()));
  }
  // Sandboxed ranks run as their tenants' uids and must be able to connect;
  // each speaks only with its own control token (and sees the socket only
  // through its own sandbox).
  if (chmod(path.c_str(), 0666) != 0) {
    return absl::UnavailableError(
        fmt::format("cannot open control socket {} to ranks: {}", path, strerror(errno)));
  }
  return absl::OkStatus();
}

void Worker::CloseSockets() {
  if (control_) {
    control_.reset();
    unlink(control_endpoint_.substr(std::string("ipc://").size()).c_str());
  }
  if (channel_) {
    // The channel drops unsent messages on close; give the final report a
    // moment to leave (the context's destruction waits for it).
    channel_->socket().set(zmq::sockopt::linger, 1000);
    channel_.reset();
  }
}

void Worker::PollOnce() {
  const absl::Time now = clock_.Now();
  absl::Time wake = std::min(next_heartbeat_, now + options_.max_poll_wait);
  if (std::optional<absl::Time> kill = table_.NextKillDeadline()) wake = std::min(wake, *kill);
  const auto timeout =
      std::chrono::milliseconds(std::max<int64_t>(0, absl::ToInt64Milliseconds(wake - now)));
  std::vector<zmq::pollitem_t> items = {
      {channel_->socket().handle(), 0, ZMQ_POLLIN, 0},
      {control_->handle(), 0, ZMQ_POLLIN, 0},
  };
  if (launcher_.wakeup_fd() >= 0) items.push_back({nullptr, launcher_.wakeup_fd(), ZMQ_POLLIN, 0});
  try {
    zmq::poll(items, timeout);
  } catch (const zmq::error_t& e) {
    if (e.num() != EINTR) Log(LogLevel::kError, "poll_failed", {{"error", e.what()}});
  }
}

void Worker::DrainCoordinator() {
  while (std::optional<absl::StatusOr<protocols::Envelope>> received = channel_->TryReceive()) {
    if (!received->ok()) {
      Log(LogLevel::kWarn, "bad_message", {{"error", received->status().ToString()}});
      continue;
    }
    // The last-resort catch: one bad message must not take the node down.
    try {
      Dispatch(**received);
    } catch (const std::exception& e) {
      Log(LogLevel::kError, "dispatch_failed", {{"error", e.what()}});
    }
  }
}

void Worker::Dispatch(const protocols::Envelope& envelope) {
  if (const auto* sync = std::get_if<protocols::WorkerSync>(&envelope.body)) {
    HandleSync(*sync);
  } else if (const auto* request = std::get_if<protocols::ReadRankLogRequest>(&envelope.body)) {
    ServeLogRequest(envelope, *request);
  } else if (const auto* error = std::get_if<protocols::ErrorReply>(&envelope.body)) {
    // The coordinator refused a report, e.g. another worker holds our name.
    Log(LogLevel::kError, "report_refused",
        {{"error", protocols::StatusFromReply(envelope).ToString()}, {"code", error->code}});
  } else {
    Log(LogLevel::kDebug, "unexpected_message", {{"body_index", envelope.body.index()}});
  }
}

void Worker::ServeLogRequest(const protocols::Envelope& envelope,
                             const protocols::ReadRankLogRequest& request) {
  absl::StatusOr<protocols::LogsReply> reply = ReadRankLog(request);
  protocols::Envelope out;
  if (reply.ok()) {
    out.request_id = envelope.request_id;
    out.body = *std::move(reply);
  } else {
    out = protocols::ErrorEnvelope(envelope.request_id, reply.status());
  }
  Send(std::move(out));
}

// Messages on the control socket come from ranks (SUBLET_CONTROL): frames
// [identity, payload] on the ROUTER. Each is untrusted (any process on the
// node can connect), so it is decoded with small limits and must carry the
// sending rank's own control token; anything else is dropped and logged.
void Worker::DrainControl() {
  zmq::message_t identity;
  while (control_->recv(identity, zmq::recv_flags::dontwait)) {
    std::vector<std::string> parts;
    bool more = identity.more();
    zmq::message_t part;
    while (more && control_->recv(part, zmq::recv_flags::dontwait)) {
      parts.push_back(part.to_string());
      more = part.more();
    }
    if (parts.size() != 1) {
      Log(LogLevel::kDebug, "control_frame_refused", {{"parts", parts.size()}});
      continue;
    }
    HandleControlFrame(parts[0]);
  }
}

void Worker::HandleControlFrame(const std::string& payload) {
  absl::StatusOr<protocols::Envelope> envelope = protocols::Decode(payload, ControlLimits());
  const auto* progress =
      envelope.ok() ? std::get_if<protocols::RankProgress>(&envelope->body) : nullptr;
  if (progress == nullptr) {
    Log(LogLevel::kDebug, "control_frame_refused",
        {{"error", envelope.ok() ? "not a rank message" : envelope.status().ToString()}});
    return;
  }
  protocols::Progress stamped = progress->progress;
  stamped.time_unix_ms = absl::ToUnixMillis(clock_.Now());
  if (!table_.RecordProgress(progress->key, envelope->token, stamped)) {
    Log(LogLevel::kDebug, "progress_refused",
        {{"job", progress->key.job_id}, {"rank", progress->key.rank}});
  }
}

void Worker::SendControl(const RankRecord& record, const protocols::PreemptNotice& notice) {
  if (!control_ || record.control_token.empty()) return;
  protocols::Envelope envelope;
  envelope.body = notice;
  const std::string frame = protocols::Encode(envelope);
  const std::string identity = ControlRoutingId(record.control_token);
  try {
    // Not routable (the rank never connected): ZeroMQ drops it; SIGUSR1 went.
    if (control_->send(zmq::buffer(identity), zmq::send_flags::sndmore | zmq::send_flags::dontwait)) {
      (void)control_->send(zmq::buffer(frame), zmq::send_flags::dontwait);
    }
  } catch (const zmq::error_t& e) {
    Log(LogLevel::kDebug, "control_send_failed", {{"job", notice.key.job_id}, {"error", e.what()}});
  }
}

void Worker::SendReport() {
  report_due_ = false;
  next_heartbeat_ = clock_.Now() + options_.heartbeat;
  protocols::Envelope envelope;
  envelope.body = BuildReport();
  Send(std::move(envelope));
}

void Worker::Send(protocols::Envelope envelope) {
  envelope.token = options_.token;
  absl::Status sent = channel_->Send(envelope);
  if (absl::Status handshake = channel_->HandshakeStatus(); !handshake.ok()) {
    sent = handshake;  // says why nothing gets through: the key, not the network
  }
  if (sent.ok()) {
    if (coordinator_unreachable_) {
      coordinator_unreachable_ = false;
      Log(LogLevel::kInfo, "coordinator_reachable", {{"coordinator", options_.coordinator}});
    }
    return;
  }
  if (!absl::IsUnavailable(sent)) {
    Log(LogLevel::kWarn, "send_failed", {{"error", sent.ToString()}});
  } else if (!coordinator_unreachable_) {
    coordinator_unreachable_ = true;
    Log(LogLevel::kWarn, "coordinator_unreachable",
        {{"coordinator", options_.coordinator}, {"error", sent.ToString()}});
  }
}

}  // namespace sublet::worker

#include "worker/control_client.h"

#include <fmt/format.h>

#include <cstdlib>

#include "absl/strings/numbers.h"
#include "protocols/codec.h"
#include "protocols/ids.h"

namespace sublet::worker {

absl::StatusOr<std::unique_ptr<ControlClient>> ControlClient::FromEnvironment(
    zmq::context_t& context) {
  const char* endpoint = std::getenv("SUBLET_CONTROL");
  if (endpoint == nullptr) return nullptr;
  const char* token = std::getenv("SUBLET_CONTROL_TOKEN");
  const char* job = std::getenv("SUBLET_JOB_ID");
  const char* attempt = std::getenv("SUBLET_ATTEMPT");
  const char* rank = std::getenv("SUBLET_RANK");
  for (auto [name, value] :
       {std::pair{"SUBLET_CONTROL_TOKEN", token}, std::pair{"SUBLET_JOB_ID", job},
        std::pair{"SUBLET_ATTEMPT", attempt}, std::pair{"SUBLET_RANK", rank}}) {
    if (value == nullptr) {
      return absl::InvalidArgumentError(fmt::format("SUBLET_CONTROL is set but {} is not", name));
    }
  }
  protocols::RankKey key;
  absl::StatusOr<uint64_t> job_id = protocols::ParseId("job", job);
  if (!job_id.ok()) {
    return absl::InvalidArgumentError(
        fmt::format("SUBLET_JOB_ID: {}", std::string(job_id.status().message())));
  }
  key.job_id = *job_id;
  if (!absl::SimpleAtoi(attempt, &key.attempt)) {
    return absl::InvalidArgumentError(fmt::format("SUBLET_ATTEMPT: '{}' is not a number", attempt));
  }
  if (!absl::SimpleAtoi(rank, &key.rank)) {
    return absl::InvalidArgumentError(fmt::format("SUBLET_RANK: '{}' is not a number", rank));
  }
  return std::make_unique<ControlClient>(context, endpoint, token, key);
}

ControlClient::ControlClient(zmq::context_t& context, std::string endpoint, std::string token,
                             protocols::RankKey key)
    : socket_(context, zmq::socket_type::dealer), token_(std::move(token)), key_(std::move(key)) {
  socket_.set(zmq::sockopt::linger, 200);  // let the last report out at exit
  socket_.set(zmq::sockopt::sndhwm, 16);   // reports supersede each other
  // The worker addresses notices to "r" + token; only this rank knows it.
  socket_.set(zmq::sockopt::routing_id, ControlRoutingId(token_));
  socket_.connect(endpoint);
}

absl::Status ControlClient::ReportProgress(const protocols::Progress& progress) {
  protocols::Envelope envelope;
  envelope.token = token_;
  envelope.body = protocols::RankProgress{key_, progress};
  const std::string frame = protocols::Encode(envelope);
  try {
    if (!socket_.send(zmq::buffer(frame), zmq::send_flags::dontwait)) {
      return absl::UnavailableError("worker control endpoint is not keeping up; report dropped");
    }
  } catch (const zmq::error_t& e) {
    return absl::UnavailableError(std::string("control endpoint: ") + e.what());
  }
  return absl::OkStatus();
}

bool ControlClient::PollNotice(protocols::PreemptNotice* notice) {
  zmq::message_t frame;
  try {
    while (socket_.recv(frame, zmq::recv_flags::dontwait)) {
      absl::StatusOr<protocols::Envelope> envelope =
          protocols::Decode(frame.to_string(), ControlLimits());
      if (!envelope.ok()) continue;
      if (auto* n = std::get_if<protocols::PreemptNotice>(&envelope->body)) {
        if (n->key != key_) continue;
        *notice = *n;
        return true;
      }
    }
  } catch (const zmq::error_t&) {
    return false;
  }
  return false;
}

}  // namespace sublet::worker

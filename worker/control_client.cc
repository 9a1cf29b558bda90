#include "worker/control_client.h"

#include <cstdlib>

#include "absl/strings/numbers.h"
#include "protocols/codec.h"

namespace sublet::worker {

std::unique_ptr<ControlClient> ControlClient::FromEnvironment(zmq::context_t& context) {
  const char* endpoint = std::getenv("SUBLET_CONTROL");
  const char* token = std::getenv("SUBLET_CONTROL_TOKEN");
  const char* job = std::getenv("SUBLET_JOB_ID");
  const char* attempt = std::getenv("SUBLET_ATTEMPT");
  const char* rank = std::getenv("SUBLET_RANK");
  protocols::RankKey key;
  if (!endpoint || !token || !job || !attempt || !rank ||
      !absl::SimpleAtoi(attempt, &key.attempt) || !absl::SimpleAtoi(rank, &key.rank)) {
    return nullptr;
  }
  key.job_id = job;
  return std::make_unique<ControlClient>(context, endpoint, token, std::move(key));
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

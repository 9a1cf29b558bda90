// The rank's side of the worker's control endpoint. A rank started by a
// worker finds SUBLET_CONTROL (the endpoint), SUBLET_CONTROL_TOKEN (its own
// secret) and its identity (SUBLET_JOB_ID, SUBLET_ATTEMPT, SUBLET_RANK) in
// its environment; under mpirun none of these exist and FromEnvironment
// returns nullptr, so callers simply skip reporting.
//
// Reports are fire-and-forget: a rank never blocks or fails because its
// worker is busy or gone. Thread-compatible (one ZeroMQ socket).
#pragma once

#include <memory>
#include <string>

#include <zmq.hpp>

#include "common/status.h"
#include "protocols/codec.h"
#include "protocols/messages.h"

namespace sublet::worker {

// The control channel's conventions, shared by both ends: the ZeroMQ routing
// id of the rank holding `token` (the worker addresses notices to it), and
// the decode limits for its small messages.
inline std::string ControlRoutingId(const std::string& token) { return "r" + token; }
inline protocols::CodecLimits ControlLimits() {
  protocols::CodecLimits limits;
  limits.max_frame_bytes = 64 << 10;
  return limits;
}

class ControlClient {
 public:
  // nullptr when the process was not started by a worker (no SUBLET_CONTROL).
  // InvalidArgument naming the variable when SUBLET_CONTROL is set but the
  // rank's identity is missing or malformed (SUBLET_JOB_ID must be a positive
  // integer, SUBLET_ATTEMPT and SUBLET_RANK numbers).
  static absl::StatusOr<std::unique_ptr<ControlClient>> FromEnvironment(zmq::context_t& context);
  ControlClient(zmq::context_t& context, std::string endpoint, std::string token,
                protocols::RankKey key);

  // Tells the worker how far this rank has come (the coordinator uses it for
  // `sublet show`, the job's last checkpoint and progress_timeout).
  absl::Status ReportProgress(const protocols::Progress& progress);

  // Non-blocking: true, filling `notice`, when the worker has sent this rank
  // a preemption notice since the last call (the worker also sends SIGUSR1).
  bool PollNotice(protocols::PreemptNotice* notice);

  const protocols::RankKey& key() const { return key_; }

 private:
  zmq::socket_t socket_;
  std::string token_;
  protocols::RankKey key_;
};

}  // namespace sublet::worker

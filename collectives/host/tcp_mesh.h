// One TCP connection to every other rank of a group, set up through the
// rendezvous store:
//   1. each rank listens on an ephemeral port of the address it reaches the
//      store from and publishes "mesh/<rank>" = "ip:port";
//   2. rank i connects to every j > i and sends its rank (4 bytes);
//   3. rank i accepts i connections and reads their ranks.
// Connects complete against the listen backlog, so the order cannot deadlock.
// Not thread-safe: one operation at a time (the executor's guarantee).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "collectives/internal/socket.h"
#include "collectives/store.h"

namespace sublet::collectives::host {

class TcpMesh {
 public:
  static absl::StatusOr<std::unique_ptr<TcpMesh>> Connect(Store& store, int rank, int size,
                                                          absl::Time deadline);
  int rank() const { return rank_; }
  int size() const { return static_cast<int>(fds_.size()); }
  int fd(int peer) const { return fds_[peer].get(); }
  // "allreduce: rank 3 (tcp)" for error messages.
  static std::string Peer(const char* op, int peer);

 private:
  TcpMesh(int rank, std::vector<internal::Fd> fds) : rank_(rank), fds_(std::move(fds)) {}
  int rank_;
  std::vector<internal::Fd> fds_;  // fds_[rank_] is unused
};

}  // namespace sublet::collectives::host

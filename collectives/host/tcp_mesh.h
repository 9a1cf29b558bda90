// One TCP connection to every other rank of a group, set up through the
// rendezvous store:
//   1. each rank listens on an ephemeral port of the address it reaches the
//      store from and publishes "mesh/<rank>" = "ip:port";
//   2. rank i connects to every j > i. Without a job secret it sends its rank
//      (u32). With one, j first sends 0xa7 || Ns (32 random bytes) and i
//      answers u32 i || Nc (32 random bytes) ||
//      HMAC(secret, "sublet/mesh/connector" || Ns || Nc || C), where
//      C = u32 i || u32 j || u32 size (internal/peer_auth.h);
//   3. rank j accepts connections until it has one from each i < j. With a
//      secret it checks each tag (constant time) and answers
//      HMAC(secret, "sublet/mesh/acceptor" || Nc || Ns || C), which i checks.
//      A connection with a wrong tag, a bad or duplicate rank, or nothing
//      within 10 s is closed and j keeps waiting for the real ranks; i fails
//      with PermissionDenied when j cannot prove the secret.
// Each rank accepts on a thread of its own while it connects, so every
// handshake is answered at once and the order cannot deadlock. With a secret
// a connect is ready about two round trips later than without (the challenge
// comes one round trip after the connect returns, the answer one more). The
// secret is never sent, and the bytes after the handshake are not
// authenticated.
// Not thread-safe: one operation at a time (the executor's guarantee).
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "collectives/internal/socket.h"
#include "collectives/store.h"

namespace sublet::collectives::host {

class TcpMesh {
 public:
  // `secret`: empty, or the job attempt's 32 raw bytes (every rank the same).
  static absl::StatusOr<std::unique_ptr<TcpMesh>> Connect(Store& store, int rank, int size,
                                                          absl::Time deadline,
                                                          std::string_view secret = {});
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

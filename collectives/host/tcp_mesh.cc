#include "collectives/host/tcp_mesh.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <deque>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "collectives/internal/peer_auth.h"
#include "common/status.h"

namespace sublet::collectives::host {
namespace {

using internal::Fd;

constexpr size_t kRankBytes = 4;
// Connections an acceptor checks at once; past this the oldest (the likeliest
// stranger: a rank answers within a round trip) is dropped.
constexpr size_t kMaxPending = 256;

std::string RankBytes(int rank) {
  int32_t r = rank;
  return std::string(reinterpret_cast<const char*>(&r), kRankBytes);
}

// What a mesh proof binds: connector, acceptor and group size.
std::string MeshContext(int from, int to, int size) {
  return RankBytes(from) + RankBytes(to) + RankBytes(size);
}

// Step 2, the connector's side: the rank (in clear) and, with a secret, the
// proof that covers it.
absl::Status SayHello(int fd, int rank, int peer, int size, std::string_view secret,
                      absl::Time deadline, const std::string& what) {
  const std::string me = RankBytes(rank);
  if (secret.empty()) return internal::WriteFull(fd, me.data(), me.size(), deadline, what);
  const std::string context = MeshContext(rank, peer, size);
  internal::PeerAuth auth{secret, internal::AuthPurpose::kMesh, context, what};
  return internal::AnswerChallenge(fd, auth, me, deadline);
}

// Step 3: accepts the `rank` lower ranks' connections into fds[0..rank).
// Handshakes are checked side by side on one poll loop, so strangers who
// connect and stay silent or send garbage are dropped (each after at most
// kAcceptorHandshakeTimeout) without delaying the real ranks behind them.
class LowerRankAcceptor {
 public:
  LowerRankAcceptor(int listener, int cancel_fd, int rank, int size, std::string_view secret)
      : listener_(listener),
        cancel_fd_(cancel_fd),
        rank_(rank),
        size_(size),
        secret_(secret),
        hello_bytes_(kRankBytes +
                     (secret.empty() ? 0 : internal::kNonceBytes + internal::kTagBytes)) {}

  absl::Status Run(absl::Time deadline, std::vector<Fd>& fds) {
    int missing = rank_;
    while (missing > 0) {
      const absl::Time now = absl::Now();
      if (now >= deadline) return TimedOut(fds);
      const size_t before = pending_.size();
      std::erase_if(pending_, [&](const Pending& p) { return p.deadline <= now; });
      dropped_ += before - pending_.size();
      std::vector<pollfd> polled = {{listener_, POLLIN, 0}, {cancel_fd_, POLLIN, 0}};
      absl::Time wake = deadline;
      for (const Pending& p : pending_) {
        polled.push_back({p.fd.get(), POLLIN, 0});
        wake = std::min(wake, p.deadline);
      }
      const int ms =
          static_cast<int>(std::clamp<int64_t>(absl::ToInt64Milliseconds(wake - now), 0, 999) + 1);
      poll(polled.data(), polled.size(), ms);
      if (polled[1].revents != 0) return absl::CancelledError("connect: cancelled");
      for (size_t i = 0; i < pending_.size() && i + 2 < polled.size(); ++i) {
        if (polled[i + 2].revents != 0 && Progress(pending_[i], fds)) --missing;
      }
      std::erase_if(pending_, [](const Pending& p) { return !p.fd.valid(); });
      if (polled[0].revents != 0) SUBLET_RETURN_IF_ERROR(AcceptWaiting(deadline));
    }
    return absl::OkStatus();
  }

 private:
  struct Pending {
    Fd fd;
    absl::Time deadline;
    internal::Nonce ns{};
    uint8_t hello[kRankBytes + internal::kNonceBytes + internal::kTagBytes] = {};
    size_t got = 0;
  };

  // Takes every connection in the backlog and, with a secret, challenges it.
  absl::Status AcceptWaiting(absl::Time deadline) {
    const std::string what = absl::StrCat("connect: rank ", rank_, " accepting lower ranks");
    while (true) {
      auto conn = internal::Accept(listener_, absl::InfinitePast(), what);
      if (absl::IsDeadlineExceeded(conn.status())) return absl::OkStatus();  // none waiting
      if (!conn.ok()) return conn.status();
      Pending p{std::move(*conn),
                std::min(deadline, absl::Now() + internal::kAcceptorHandshakeTimeout)};
      if (!secret_.empty()) {
        p.ns = internal::RandomNonce();
        uint8_t challenge[internal::kChallengeBytes] = {internal::kChallengeMarker};
        memcpy(challenge + 1, p.ns.data(), p.ns.size());
        // A fresh socket's send buffer is empty: this never blocks.
        if (send(p.fd.get(), challenge, sizeof(challenge), MSG_DONTWAIT | MSG_NOSIGNAL) !=
            static_cast<ssize_t>(sizeof(challenge))) {
          ++dropped_;
          continue;
        }
      }
      if (pending_.size() >= kMaxPending) {
        pending_.pop_front();
        ++dropped_;
      }
      pending_.push_back(std::move(p));
    }
  }

  // Reads what `p` sent; true when that completed a valid hello and fds got
  // its connection. A connection that broke or lied is closed (p.fd reset).
  bool Progress(Pending& p, std::vector<Fd>& fds) {
    ssize_t k = recv(p.fd.get(), p.hello + p.got, hello_bytes_ - p.got, MSG_DONTWAIT);
    if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return false;
    if (k <= 0) return Drop(p);
    p.got += static_cast<size_t>(k);
    if (p.got < hello_bytes_) return false;
    int32_t who = -1;
    memcpy(&who, p.hello, kRankBytes);
    if (who < 0 || who >= rank_ || fds[who].valid()) return Drop(p);
    if (!secret_.empty()) {
      const std::string context = MeshContext(who, rank_, size_);
      internal::PeerAuth auth{secret_, internal::AuthPurpose::kMesh, context, ""};
      internal::Nonce nc;
      memcpy(nc.data(), p.hello + kRankBytes, nc.size());
      if (!internal::TagMatches(internal::ConnectorTag(auth, p.ns, nc),
                                p.hello + kRankBytes + nc.size())) {
        return Drop(p);
      }
      const internal::Tag mine = internal::AcceptorTag(auth, p.ns, nc);
      if (send(p.fd.get(), mine.data(), mine.size(), MSG_DONTWAIT | MSG_NOSIGNAL) !=
          static_cast<ssize_t>(mine.size())) {
        return Drop(p);
      }
    }
    fds[who] = std::move(p.fd);
    return true;
  }

  bool Drop(Pending& p) {
    p.fd.Reset();
    ++dropped_;
    return false;
  }

  absl::Status TimedOut(const std::vector<Fd>& fds) const {
    std::vector<int> missing;
    for (int k = 0; k < rank_; ++k) {
      if (!fds[k].valid()) missing.push_back(k);
    }
    std::string msg = absl::StrCat("connect: rank ", rank_,
                                   " timed out waiting for lower ranks to connect (missing rank ",
                                   absl::StrJoin(missing, ", "), ")");
    if (dropped_ > 0) {
      absl::StrAppend(&msg, "; dropped ", dropped_, " connection(s) that ",
                      secret_.empty() ? "sent no valid hello"
                                      : "failed the job-secret challenge (not ranks of this job "
                                        "attempt?)");
    }
    return absl::DeadlineExceededError(msg);
  }

  const int listener_;
  const int cancel_fd_;
  const int rank_;
  const int size_;
  const std::string_view secret_;
  const size_t hello_bytes_;
  std::deque<Pending> pending_;
  size_t dropped_ = 0;
};

// A pipe whose write end, once written, stops a LowerRankAcceptor.
class CancelPipe {
 public:
  CancelPipe() {
    if (pipe2(fds_, O_CLOEXEC) != 0) fds_[0] = fds_[1] = -1;
  }
  ~CancelPipe() {
    for (int fd : fds_) {
      if (fd >= 0) close(fd);
    }
  }
  bool ok() const { return fds_[0] >= 0; }
  int read_fd() const { return fds_[0]; }
  void Cancel() {
    if (write(fds_[1], "x", 1) < 0) {
    }
  }

 private:
  int fds_[2];
};

// Steps 1 and 2: publishes `me`, then connects to every rank above `rank`
// into fds[rank+1..size).
absl::Status ConnectHigherRanks(Store& store, const std::string& me, int rank, int size,
                                std::string_view secret, absl::Time deadline,
                                std::vector<Fd>& fds) {
  SUBLET_ASSIGN_OR_RETURN(std::vector<std::string> addrs,
                          AllGatherViaStore(store, "mesh", rank, size, me, deadline));
  for (int j = rank + 1; j < size; ++j) {
    std::string host;
    int port;
    SUBLET_RETURN_IF_ERROR(internal::ParseHostPort(addrs[j], &host, &port));
    SUBLET_ASSIGN_OR_RETURN(Fd fd,
                            internal::Connect(host, port, deadline, TcpMesh::Peer("connect", j)));
    SUBLET_RETURN_IF_ERROR(SayHello(fd.get(), rank, j, size, secret, deadline,
                                    TcpMesh::Peer("connect", j) + " at " + addrs[j]));
    fds[j] = std::move(fd);
  }
  return absl::OkStatus();
}

}  // namespace

std::string TcpMesh::Peer(const char* op, int peer) {
  return absl::StrCat(op, ": rank ", peer, " (tcp)");
}

absl::StatusOr<std::unique_ptr<TcpMesh>> TcpMesh::Connect(Store& store, int rank, int size,
                                                          absl::Time deadline,
                                                          std::string_view secret) {
  SUBLET_RETURN_IF_ERROR(internal::CheckSecretSize(secret, "connect"));
  if (!secret.empty()) SUBLET_RETURN_IF_ERROR(internal::SodiumReady());
  std::string ip = store.LocalAddress();
  int port = 0;
  SUBLET_ASSIGN_OR_RETURN(Fd listener, internal::Listen(ip, 0, &port));
  // Accepting runs beside everything else from the moment the port exists:
  // a connect completes only when its acceptor answers, so every rank must
  // be answering from the start for the handshakes not to run one rank
  // after another (and strangers are dropped even while we rendezvous).
  CancelPipe cancel;
  if (!cancel.ok()) return absl::InternalError("connect: pipe2 failed");
  std::vector<Fd> fds(size);
  absl::Status accepted;
  std::thread acceptor([&] {
    accepted =
        LowerRankAcceptor(listener.get(), cancel.read_fd(), rank, size, secret).Run(deadline, fds);
  });
  absl::Status connected =
      ConnectHigherRanks(store, absl::StrCat(ip, ":", port), rank, size, secret, deadline, fds);
  if (!connected.ok()) cancel.Cancel();
  acceptor.join();
  SUBLET_RETURN_IF_ERROR(connected);
  SUBLET_RETURN_IF_ERROR(accepted);
  return std::unique_ptr<TcpMesh>(new TcpMesh(rank, std::move(fds)));
}

}  // namespace sublet::collectives::host

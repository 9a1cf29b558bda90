#include "collectives/internal/socket.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <algorithm>
#include <cstring>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace sublet::collectives::internal {
namespace {

absl::Status Errno(const std::string& what, const char* call) {
  return absl::UnavailableError(absl::StrCat(what, ": ", call, ": ", strerror(errno)));
}

void SetNonBlocking(int fd) { fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK); }

// Milliseconds to wait in poll() before `deadline`, capped so that very long
// deadlines still wake up now and then; -1 never happens.
// At most a second, so that an infinite deadline (a store server waiting for
// its next request) sleeps in poll instead of overflowing to a 0 ms spin.
int PollMs(absl::Time deadline) {
  absl::Duration left = deadline - absl::Now();
  if (left <= absl::ZeroDuration()) return 0;
  left = std::min(left, absl::Seconds(1));
  return static_cast<int>(std::min<int64_t>(absl::ToInt64Milliseconds(left) + 1, 1000));
}

absl::Status Timeout(const std::string& what, const char* doing) {
  return absl::DeadlineExceededError(absl::StrCat(what, ": timed out ", doing));
}

absl::StatusOr<sockaddr_in> Resolve(const std::string& host, int port) {
  addrinfo hints{};
  hints.ai_family = AF_INET;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  int rc = getaddrinfo(host.empty() ? "0.0.0.0" : host.c_str(), nullptr, &hints, &res);
  if (rc != 0 || res == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat("cannot resolve '", host, "': ", gai_strerror(rc)));
  }
  sockaddr_in addr = *reinterpret_cast<sockaddr_in*>(res->ai_addr);
  freeaddrinfo(res);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  return addr;
}

// Raises a socket's receive low-water mark while a large SendRecv waits, so
// that poll() wakes once per kWakeBytes instead of once per segment: on a
// busy core every wake-up is two context switches taken from the compute
// beside it. The kernel still wakes early when the receive window or memory
// runs short (tcp_epollin_ready), so the mark cannot stall a transfer. The
// mark stays at most a quarter of the receive buffer: a larger one makes
// Linux grow the buffer and clamp the TCP window to the mark for good
// (tcp_set_rcvlowat), which restoring the mark would not undo. Small waits
// (headers, scalars) leave the socket alone.
class RecvLowWater {
 public:
  static constexpr size_t kWakeBytes = 256 << 10;
  static constexpr size_t kMinBytes = 64 << 10;
  explicit RecvLowWater(int fd) : fd_(fd) {}
  ~RecvLowWater() { Set(1); }  // the default, for the socket's other users
  void Want(size_t bytes) {
    if (bytes < kMinBytes && set_ == 1) return;
    if (rcvbuf_ < 0) {
      socklen_t len = sizeof(rcvbuf_);
      if (getsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &rcvbuf_, &len) != 0) rcvbuf_ = 0;
    }
    const size_t cap = std::min<size_t>(kWakeBytes, static_cast<size_t>(rcvbuf_) / 4);
    Set(static_cast<int>(std::clamp<size_t>(bytes, 1, std::max<size_t>(1, cap))));
  }

 private:
  void Set(int v) {
    if (v == set_) return;
    if (setsockopt(fd_, SOL_SOCKET, SO_RCVLOWAT, &v, sizeof(v)) == 0) set_ = v;
  }
  int fd_;
  int set_ = 1;
  int rcvbuf_ = -1;  // read once, at the first wait
};

// Errors accept() reports for a connection that failed in the backlog (see
// accept(2)): the fault of that peer, so they must not fail the listener.
bool PeerGoneBeforeAccept(int err) {
  switch (err) {
    case ECONNABORTED:
    case EPROTO:
    case ENETDOWN:
    case ENOPROTOOPT:
    case EHOSTDOWN:
    case ENONET:
    case EHOSTUNREACH:
    case EOPNOTSUPP:
    case ENETUNREACH:
      return true;
    default:
      return false;
  }
}

}  // namespace

void Fd::Reset() {
  if (fd_ >= 0) close(fd_);
  fd_ = -1;
}

absl::StatusOr<Fd> Listen(const std::string& host, int port, int* bound_port) {
  auto addr = Resolve(host, port);
  if (!addr.ok()) return addr.status();
  Fd fd(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd.valid()) return Errno("listen", "socket");
  int one = 1;
  setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (bind(fd.get(), reinterpret_cast<sockaddr*>(&*addr), sizeof(*addr)) != 0) {
    return Errno(absl::StrCat("listen on ", host, ":", port), "bind");
  }
  if (listen(fd.get(), 1024) != 0) return Errno("listen", "listen");
  sockaddr_in got{};
  socklen_t len = sizeof(got);
  getsockname(fd.get(), reinterpret_cast<sockaddr*>(&got), &len);
  if (bound_port) *bound_port = ntohs(got.sin_port);
  SetNonBlocking(fd.get());
  return fd;
}

absl::StatusOr<Fd> Accept(int listen_fd, absl::Time deadline, const std::string& what) {
  while (true) {
    int c = accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (c >= 0) {
      int one = 1;
      setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
      return Fd(c);
    }
    if (PeerGoneBeforeAccept(errno)) continue;  // that one is gone; take the next
    if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) return Errno(what, "accept");
    if (absl::Now() >= deadline) return Timeout(what, "waiting for a connection");
    pollfd p{listen_fd, POLLIN, 0};
    poll(&p, 1, PollMs(deadline));
  }
}

absl::StatusOr<Fd> Connect(const std::string& host, int port, absl::Time deadline,
                           const std::string& what) {
  auto addr = Resolve(host, port);
  if (!addr.ok()) return addr.status();
  absl::Duration backoff = absl::Milliseconds(1);
  while (true) {
    Fd fd(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!fd.valid()) return Errno(what, "socket");
    if (connect(fd.get(), reinterpret_cast<sockaddr*>(&*addr), sizeof(*addr)) == 0) {
      int one = 1;
      setsockopt(fd.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
      SetNonBlocking(fd.get());
      return fd;
    }
    if (errno != ECONNREFUSED && errno != EINTR && errno != ECONNRESET) {
      return Errno(absl::StrCat(what, " at ", host, ":", port), "connect");
    }
    if (absl::Now() + backoff >= deadline) {
      return Timeout(absl::StrCat(what, " at ", host, ":", port), "connecting");
    }
    // Retry pacing for a listener that is not up yet; not synchronisation.
    absl::SleepFor(backoff);
    backoff = std::min(backoff * 2, absl::Milliseconds(100));
  }
}

absl::Status WriteFull(int fd, const void* data, size_t n, absl::Time deadline,
                       const std::string& what) {
  return SendRecv(fd, data, n, what, -1, nullptr, 0, what, deadline);
}

absl::Status ReadFull(int fd, void* data, size_t n, absl::Time deadline, const std::string& what) {
  return SendRecv(-1, nullptr, 0, what, fd, data, n, what, deadline);
}

absl::Status SendRecv(int send_fd, const void* sbuf, size_t sn, const std::string& send_what,
                      int recv_fd, void* rbuf, size_t rn, const std::string& recv_what,
                      absl::Time deadline, const std::function<void(size_t)>& on_recv) {
  size_t sent = 0, got = 0;
  const char* s = static_cast<const char*>(sbuf);
  char* r = static_cast<char*>(rbuf);
  RecvLowWater low_water(recv_fd);
  while (sent < sn || got < rn) {
    bool progress = false;
    if (sent < sn) {
      ssize_t k = send(send_fd, s + sent, sn - sent, MSG_NOSIGNAL | MSG_DONTWAIT);
      if (k > 0) {
        sent += static_cast<size_t>(k);
        progress = true;
      } else if (k < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
        return Errno(send_what, "send");
      }
    }
    if (got < rn) {
      ssize_t k = recv(recv_fd, r + got, rn - got, MSG_DONTWAIT);
      if (k > 0) {
        got += static_cast<size_t>(k);
        progress = true;
        if (on_recv) on_recv(got);
      } else if (k == 0) {
        return absl::UnavailableError(absl::StrCat(recv_what, ": connection closed by peer"));
      } else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
        return Errno(recv_what, "recv");
      }
    }
    if (progress) continue;
    if (absl::Now() >= deadline) {
      return Timeout(got < rn ? recv_what : send_what, got < rn ? "receiving" : "sending");
    }
    if (got < rn) low_water.Want(rn - got);
    pollfd p[2];
    int np = 0;
    if (sent < sn) p[np++] = pollfd{send_fd, POLLOUT, 0};
    if (got < rn) p[np++] = pollfd{recv_fd, POLLIN, 0};
    poll(p, np, PollMs(deadline));
  }
  return absl::OkStatus();
}

absl::Status ParseHostPort(const std::string& s, std::string* host, int* port) {
  size_t colon = s.rfind(':');
  if (colon == std::string::npos || colon == 0 ||
      !absl::SimpleAtoi(s.substr(colon + 1), port) || *port <= 0 || *port > 65535) {
    return absl::InvalidArgumentError(absl::StrCat("'", s, "' is not host:port"));
  }
  *host = s.substr(0, colon);
  return absl::OkStatus();
}

std::string LocalAddress(int fd) {
  sockaddr_in a{};
  socklen_t len = sizeof(a);
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) return "127.0.0.1";
  char buf[INET_ADDRSTRLEN] = {};
  inet_ntop(AF_INET, &a.sin_addr, buf, sizeof(buf));
  return buf;
}

}  // namespace sublet::collectives::internal

// Small blocking-with-deadline helpers over non-blocking TCP sockets, used by
// the rendezvous store and the host backend. Errors name `what` (the peer).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace sublet::collectives::internal {

// Owns a file descriptor.
class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() { Reset(); }
  Fd(Fd&& o) noexcept : fd_(o.fd_) { o.fd_ = -1; }
  Fd& operator=(Fd&& o) noexcept {
    if (this != &o) {
      Reset();
      fd_ = o.fd_;
      o.fd_ = -1;
    }
    return *this;
  }
  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  void Reset();

 private:
  int fd_ = -1;
};

// Listens on host:port (port 0 picks one); the socket is non-blocking.
absl::StatusOr<Fd> Listen(const std::string& host, int port, int* bound_port);
// Accepts one connection before `deadline`.
absl::StatusOr<Fd> Accept(int listen_fd, absl::Time deadline, const std::string& what);
// Connects, retrying refused connections until `deadline` (the listener may
// not be up yet). TCP_NODELAY is set.
absl::StatusOr<Fd> Connect(const std::string& host, int port, absl::Time deadline,
                           const std::string& what);

absl::Status WriteFull(int fd, const void* data, size_t n, absl::Time deadline,
                       const std::string& what);
absl::Status ReadFull(int fd, void* data, size_t n, absl::Time deadline, const std::string& what);

// Sends `sn` bytes to `send_fd` while receiving `rn` bytes from `recv_fd`
// (both directions at once, so two ranks exchanging large buffers never
// deadlock on full socket buffers). `on_recv(total_received)` is called as
// bytes arrive, so callers can consume data while the rest is in flight.
absl::Status SendRecv(int send_fd, const void* sbuf, size_t sn, const std::string& send_what,
                      int recv_fd, void* rbuf, size_t rn, const std::string& recv_what,
                      absl::Time deadline, const std::function<void(size_t)>& on_recv = nullptr);

// "host:port" -> parts.
absl::Status ParseHostPort(const std::string& s, std::string* host, int* port);
// The local address of a connected socket (the interface peers can reach).
std::string LocalAddress(int fd);

}  // namespace sublet::collectives::internal

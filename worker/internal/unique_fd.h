// A file descriptor with one owner: closed when the owner goes away, so a
// function with many error paths needs no close list on each of them.
//
// Between fork and exec the child must not run destructors that close the
// parent's descriptors behind its back: pass it get(), and let it _exit or
// exec (neither unwinds).
#pragma once

#include <unistd.h>

#include <utility>

namespace sublet::worker::internal {

class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  ~UniqueFd() { reset(); }
  UniqueFd(UniqueFd&& other) noexcept : fd_(other.release()) {}
  UniqueFd& operator=(UniqueFd&& other) noexcept {
    reset(other.release());
    return *this;
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;

  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  // Gives up ownership: the caller closes the returned descriptor.
  int release() { return std::exchange(fd_, -1); }
  // Closes the owned descriptor (a close error is lost: the descriptor is
  // gone either way) and takes `fd` instead.
  void reset(int fd = -1) {
    if (fd_ >= 0) close(fd_);
    fd_ = fd;
  }

 private:
  int fd_ = -1;
};

}  // namespace sublet::worker::internal

// Writing from a forked child, where only async-signal-safe calls may run:
// the launcher's rank set-up and the sandbox holder report their failures
// with these.
#pragma once

#include <errno.h>
#include <string.h>
#include <unistd.h>

#include <cstddef>

namespace sublet::worker::internal {

// write(2) the whole buffer, ignoring errors.
inline void WriteAll(int fd, const char* data, size_t size) {
  while (size > 0) {
    const ssize_t n = write(fd, data, size);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    data += n;
    size -= static_cast<size_t>(n);
  }
}

inline void WriteCString(int fd, const char* text) { WriteAll(fd, text, strlen(text)); }

// "<prefix><what>: <strerror>", or "<prefix><what>" without an errno, then
// `end` (e.g. "\n").
inline void WriteFailure(int fd, const char* prefix, const char* what, int error,
                         const char* end = "\n") {
  WriteCString(fd, prefix);
  WriteCString(fd, what);
  if (error != 0) {
    WriteCString(fd, ": ");
    WriteCString(fd, strerrordesc_np(error));
  }
  WriteCString(fd, end);
}

}  // namespace sublet::worker::internal

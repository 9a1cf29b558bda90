// The one place that turns bytes from the network into messages. Frames are
// single Cap'n Proto messages (flat array, unpacked) holding an Envelope.
//
// Decoding copies the frame into a word-aligned buffer, reads it with explicit
// ReaderOptions, converts every field into the plain values of messages.h and
// catches Cap'n Proto's exceptions here, so a hostile frame becomes an
// InvalidArgument status and never an exception, crash or unbounded work.
#pragma once

#include <cstdint>
#include <span>
#include <string>

#include "common/status.h"
#include "protocols/messages.h"

namespace sublet::protocols {

struct CodecLimits {
  size_t max_frame_bytes = 16 << 20;        // frames above this are refused unread
  uint64_t traversal_limit_words = 4 << 20;  // 32 MiB of pointer traversal
  int nesting_limit = 16;
  size_t max_list_elements = 100'000;        // per list, checked before copying
  // All lists of one message together: bounds the memory a small frame can
  // make the decoder allocate (each element becomes a C++ value).
  size_t max_total_elements = 1'000'000;
};

// Serializes an envelope. Cannot fail for values built in this process.
std::string Encode(const Envelope& envelope);

// Parses one frame. Errors: InvalidArgument naming the problem (too large,
// truncated, not Cap'n Proto, unknown body, a list over its limit) or
// FailedPrecondition for a protocol version this build does not speak.
absl::StatusOr<Envelope> Decode(std::span<const uint8_t> frame, const CodecLimits& limits = {});
inline absl::StatusOr<Envelope> Decode(std::string_view frame, const CodecLimits& limits = {}) {
  return Decode(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(frame.data()),
                                         frame.size()),
                limits);
}

// A reply carrying `status` (which must not be OK) for `request_id`.
Envelope ErrorEnvelope(uint64_t request_id, const absl::Status& status);

// The status an ErrorReply stands for; OK for any other body.
absl::Status StatusFromReply(const Envelope& reply);

}  // namespace sublet::protocols

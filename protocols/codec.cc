#include "protocols/codec.h"

#include <algorithm>

#include <capnp/message.h>
#include <capnp/serialize.h>
#include <fmt/format.h>
#include <kj/exception.h>

#include <cstring>
#include <string>

#include "protocols/internal/convert.h"
#include "protocols/sublet.capnp.h"

namespace sublet::protocols {
namespace {

// Size checks that need no parsing: a frame failing them is never copied.
absl::Status CheckFrameSize(size_t size, const CodecLimits& limits) {
  if (size == 0) return absl::InvalidArgumentError("malformed frame: empty");
  if (size > limits.max_frame_bytes) {
    return absl::InvalidArgumentError(
        fmt::format("frame of {} bytes exceeds the limit of {}", size, limits.max_frame_bytes));
  }
  if (size % sizeof(capnp::word) != 0) {
    return absl::InvalidArgumentError(
        fmt::format("malformed frame: {} bytes is not a whole number of 8-byte words", size));
  }
  return absl::OkStatus();
}

// Reads an aligned copy of the frame. Cap'n Proto throws on malformed input
// (bad segment table, out-of-bounds pointers, limits exceeded); the caller
// catches that.
absl::Status ReadFrame(kj::ArrayPtr<const capnp::word> words, const CodecLimits& limits,
                       Envelope& out) {
  capnp::ReaderOptions options;
  // Amplification bound: Cap'n Proto charges each element of a list of empty
  // structs one traversal word, and each such element becomes a full C++
  // value here, so a tiny frame could otherwise decode into gigabytes. Allow
  // at most a few traversal words per word of frame.
  const uint64_t frame_words = words.size();
  options.traversalLimitInWords =
      std::min<uint64_t>(limits.traversal_limit_words, 64 + 4 * frame_words);
  options.nestingLimit = limits.nesting_limit;
  capnp::FlatArrayMessageReader reader(words, options);
  if (reader.getEnd() != words.end()) {
    return absl::InvalidArgumentError("malformed frame: trailing bytes after the message");
  }
  auto root = reader.getRoot<wire::Envelope>();
  if (root.getVersion() != kProtocolVersion) {
    return absl::FailedPreconditionError(
        fmt::format("peer speaks protocol version {}, this build speaks version {}",
                    root.getVersion(), kProtocolVersion));
  }
  return internal::ReadEnvelope(root, limits, out);
}

}  // namespace

std::string Encode(const Envelope& envelope) {
  capnp::MallocMessageBuilder builder;
  internal::WriteEnvelope(envelope, builder.initRoot<wire::Envelope>());
  kj::Array<capnp::word> words = capnp::messageToFlatArray(builder);
  kj::ArrayPtr<const kj::byte> bytes = words.asBytes();
  return std::string(reinterpret_cast<const char*>(bytes.begin()), bytes.size());
}

absl::StatusOr<Envelope> Decode(std::span<const uint8_t> frame, const CodecLimits& limits) {
  SUBLET_RETURN_IF_ERROR(CheckFrameSize(frame.size(), limits));
  kj::Array<capnp::word> words = kj::heapArray<capnp::word>(frame.size() / sizeof(capnp::word));
  std::memcpy(words.begin(), frame.data(), frame.size());

  Envelope envelope;
  absl::Status status;
  KJ_IF_MAYBE (exception,
               kj::runCatchingExceptions([&]() { status = ReadFrame(words, limits, envelope); })) {
    return absl::InvalidArgumentError(
        fmt::format("malformed frame: {}", exception->getDescription().cStr()));
  }
  if (!status.ok()) return status;
  return envelope;
}

Envelope ErrorEnvelope(uint64_t request_id, const absl::Status& status) {
  // An OK status here is a caller bug; send Unknown rather than a reply that
  // reads as success.
  absl::StatusCode code = status.ok() ? absl::StatusCode::kUnknown : status.code();
  Envelope envelope;
  envelope.request_id = request_id;
  envelope.body = ErrorReply{static_cast<uint32_t>(code), std::string(status.message())};
  return envelope;
}

absl::Status StatusFromReply(const Envelope& reply) {
  const auto* error = std::get_if<ErrorReply>(&reply.body);
  if (error == nullptr) return absl::OkStatus();
  // Codes outside absl's canonical range (or OK) from a peer become Unknown.
  uint32_t code = error->code;
  if (code == 0 || code > static_cast<uint32_t>(absl::StatusCode::kUnauthenticated)) {
    code = static_cast<uint32_t>(absl::StatusCode::kUnknown);
  }
  return absl::Status(static_cast<absl::StatusCode>(code), error->message);
}

}  // namespace sublet::protocols

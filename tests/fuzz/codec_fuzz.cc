// Fuzz target: every frame the coordinator or a worker can receive (API
// requests and replies, worker reports, syncs, log requests) goes through
// protocols::Decode. Properties: Decode never crashes, hangs or leaks on any
// bytes, and whatever it accepts re-encodes to a frame that decodes to the
// same message.
#include <cstddef>
#include <cstdint>
#include <span>

#include "protocols/codec.h"
#include "tests/fuzz/outcome.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace sublet::protocols;
  CodecLimits limits;
  limits.max_frame_bytes = 1 << 20;
  absl::StatusOr<Envelope> decoded = Decode(std::span<const uint8_t>(data, size), limits);
  sublet::fuzz::last_outcome =
      decoded.ok() ? sublet::fuzz::Outcome::kAccepted : sublet::fuzz::Outcome::kRefused;
  if (!decoded.ok()) return 0;
  // Re-encoding may legitimately grow a frame (defaults written out), so the
  // round trip is checked with the default limits.
  // Compared as bytes, not with ==, so that a NaN survives as itself.
  const std::string encoded = Encode(*decoded);
  absl::StatusOr<Envelope> again = Decode(encoded);
  if (!again.ok() || Encode(*again) != encoded) __builtin_trap();
  return 0;
}

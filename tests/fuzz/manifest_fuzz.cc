// Fuzz target: checkpoint MANIFEST and COMMIT files are read back from shared
// storage that a tenant's own ranks write, so they are untrusted. Properties:
// the parsers never crash, hang or over-allocate on any bytes, and a manifest
// they accept re-encodes to bytes that parse and re-encode identically.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "checkpoint/manifest.h"
#include "tests/fuzz/outcome.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace sublet::checkpoint;
  std::string_view bytes(reinterpret_cast<const char*>(data), size);
  const bool commit = ParseCommit(bytes).ok();
  absl::StatusOr<Manifest> manifest = ParseManifest(bytes);
  // Accepted: the bytes are a valid COMMIT or a valid MANIFEST.
  sublet::fuzz::last_outcome = commit || manifest.ok() ? sublet::fuzz::Outcome::kAccepted
                                                       : sublet::fuzz::Outcome::kRefused;
  if (!manifest.ok()) return 0;
  const std::string encoded = EncodeManifest(*manifest);
  absl::StatusOr<Manifest> again = ParseManifest(encoded);
  if (!again.ok() || EncodeManifest(*again) != encoded) __builtin_trap();
  return 0;
}

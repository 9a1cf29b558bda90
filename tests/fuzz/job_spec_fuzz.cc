// Fuzz target: job specs are tenant-written YAML parsed by the CLI and, as
// Cap'n Proto, validated again by the coordinator. Properties: the parser
// never crashes or throws on any text, and an accepted spec renders back to
// YAML that parses to the same spec and still validates.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "protocols/job_spec.h"
#include "tests/fuzz/outcome.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace sublet::protocols;
  std::string_view text(reinterpret_cast<const char*>(data), size);
  absl::StatusOr<JobSpec> spec = ParseJobSpecYaml(text);
  sublet::fuzz::last_outcome =
      spec.ok() ? sublet::fuzz::Outcome::kAccepted : sublet::fuzz::Outcome::kRefused;
  if (!spec.ok()) return 0;
  if (!ValidateJobSpec(*spec).ok()) __builtin_trap();
  absl::StatusOr<JobSpec> again = ParseJobSpecYaml(JobSpecToYaml(*spec));
  if (!again.ok() || !(*again == *spec)) __builtin_trap();
  return 0;
}

// Human durations as written in job specs, configs and flags: "90s", "2h",
// "1h30m", "500ms", "1d". Parsing rejects negative, empty and unit-less text.
#pragma once

#include <string>
#include <string_view>

#include "absl/time/time.h"
#include "common/status.h"

namespace sublet {

// Parses a positive duration. Accepted units: ms, s, m, h, d (and the other
// units absl::ParseDuration knows). The error names what was wrong.
absl::StatusOr<absl::Duration> ParseDuration(std::string_view text);

// "2h", "1h30m", "45s", "250ms": the inverse of ParseDuration for display.
std::string FormatDuration(absl::Duration d);

}  // namespace sublet

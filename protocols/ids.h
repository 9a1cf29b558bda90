// Job and reclaim ids written as text: command-line arguments (`sublet show
// 7`) and the SUBLET_JOB_ID a rank finds in its environment. On the wire and
// inside the daemons they are uint64 (messages.h), assigned from 1 up; 0
// means "none", so it is never a valid id to name.
#pragma once

#include <cstdint>
#include <string_view>

#include "common/status.h"

namespace sublet::protocols {

// `text` as an id: decimal digits only (no sign, space or other text), 1 to
// 2^64-1. `kind` names the id in the error ("job", "reclaim"):
// InvalidArgument "invalid job id 'abc': expected a positive integer".
absl::StatusOr<uint64_t> ParseId(std::string_view kind, std::string_view text);

}  // namespace sublet::protocols

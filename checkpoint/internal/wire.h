// Small helpers shared by save and load: status on the wire between ranks,
// agreement on an outcome, and writing a small file durably.
#pragma once

#include <string>
#include <vector>

#include "checkpoint/fs.h"
#include "checkpoint/group.h"
#include "checkpoint/internal/bytes.h"
#include "common/status.h"

namespace sublet::checkpoint::internal {

void PutStatus(ByteWriter& w, const absl::Status& status);
// Reads what PutStatus wrote; a malformed message is Internal.
absl::Status GetStatus(ByteReader& r);

// Every rank contributes its status; returns the first failure by rank
// ("rank 3: ...") or OK. A failed AllGather is returned as is.
absl::Status AgreeOk(Group& group, const absl::Status& mine);

// Creates `path` with `data`, fdatasyncs and closes it.
absl::Status WriteSmallFile(FileSystem& fs, const std::string& path, const std::string& data);

std::string TempDirName(int64_t step);  // ".tmp-step-00000400"

}  // namespace sublet::checkpoint::internal

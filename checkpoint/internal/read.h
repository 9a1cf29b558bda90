// Reading a committed checkpoint back, verifying as it goes. Shared by
// LoadCheckpoint, ListCheckpoints and VerifyCheckpoint.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "checkpoint/fs.h"
#include "checkpoint/manifest.h"
#include "common/status.h"

namespace sublet::checkpoint::internal {

// COMMIT, then MANIFEST against COMMIT's size and checksum, then the parse,
// then the step in both against the directory name. A missing COMMIT is
// FailedPrecondition (partial); anything else wrong is DataLoss.
absl::StatusOr<Manifest> ReadCommitted(FileSystem& fs, const std::string& step_dir,
                                       int64_t dir_step);

// Every shard file exists with exactly the size MANIFEST gives (DataLoss).
absl::Status CheckFileSizes(FileSystem& fs, const std::string& step_dir, const Manifest& m);

// Opens the step's shard files once for a reader that reads many ranges.
class ShardFiles {
 public:
  ShardFiles(FileSystem& fs, std::string step_dir, const Manifest& m)
      : fs_(fs), step_dir_(std::move(step_dir)), m_(m), open_(m.files.size()) {}

  // Reads bytes [begin, end) of `piece` into `out` and checks the checksums
  // of the blocks they span; `begin` must start a block and `end` must end
  // one (or the piece). DataLoss names the file and the bad block's offset.
  absl::Status ReadVerified(const Piece& piece, uint64_t begin, uint64_t end, std::byte* out);
  // Opens every file, after which the calls below are thread-safe.
  absl::Status OpenAll();
  // Hints that bytes [begin, end) of `piece` are read soon.
  void WillNeed(const Piece& piece, uint64_t begin, uint64_t end);

 private:
  absl::StatusOr<ReadableFile*> Open(uint32_t file);

  FileSystem& fs_;
  std::string step_dir_;
  const Manifest& m_;
  std::vector<std::unique_ptr<ReadableFile>> open_;
};

}  // namespace sublet::checkpoint::internal

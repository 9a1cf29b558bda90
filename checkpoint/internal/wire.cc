#include "checkpoint/internal/wire.h"

#include "checkpoint/manifest.h"
#include "fmt/format.h"

namespace sublet::checkpoint::internal {

void PutStatus(ByteWriter& w, const absl::Status& status) {
  w.U32(static_cast<uint32_t>(status.code()));
  w.Bytes(std::string(status.message()));
}

absl::Status GetStatus(ByteReader& r) {
  uint32_t code;
  std::string message;
  if (!r.U32(&code) || !r.Bytes(&message, 1 << 16) || code > 16) {
    return absl::InternalError("malformed message from a peer rank");
  }
  return absl::Status(static_cast<absl::StatusCode>(code), message);
}

absl::Status AgreeOk(Group& group, const absl::Status& mine) {
  ByteWriter w;
  PutStatus(w, mine);
  SUBLET_ASSIGN_OR_RETURN(std::vector<std::string> all, group.AllGather(w.str()));
  for (size_t r = 0; r < all.size(); ++r) {
    ByteReader reader(all[r]);
    absl::Status status = GetStatus(reader);
    if (!status.ok()) {
      return absl::Status(status.code(), fmt::format("rank {}: {}", r, std::string(status.message())));
    }
  }
  return absl::OkStatus();
}

absl::Status WriteSmallFile(FileSystem& fs, const std::string& path, const std::string& data) {
  SUBLET_ASSIGN_OR_RETURN(std::unique_ptr<WritableFile> file, fs.NewWritableFile(path));
  SUBLET_RETURN_IF_ERROR(file->Append(data.data(), data.size()));
  SUBLET_RETURN_IF_ERROR(file->Sync());
  return file->Close();
}

std::string TempDirName(int64_t step) { return ".tmp-" + StepDirName(step); }

}  // namespace sublet::checkpoint::internal

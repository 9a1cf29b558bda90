#include "checkpoint/internal/read.h"

#include <algorithm>
#include <filesystem>

#include "fmt/format.h"

namespace sublet::checkpoint::internal {
namespace {

absl::Status Prefixed(const absl::Status& s, const std::string& prefix) {
  return absl::Status(s.code(), fmt::format("{}{}", prefix, std::string(s.message())));
}

}  // namespace

absl::StatusOr<Manifest> ReadCommitted(FileSystem& fs, const std::string& step_dir,
                                       int64_t dir_step) {
  const std::string name = std::filesystem::path(step_dir).filename().string() + "/";
  if (!fs.Exists(step_dir + "/COMMIT")) {
    return absl::FailedPreconditionError(name + "COMMIT missing (save did not finish)");
  }
  absl::StatusOr<std::string> commit_bytes = fs.ReadFile(step_dir + "/COMMIT", kMaxCommitBytes);
  if (!commit_bytes.ok()) return Prefixed(commit_bytes.status(), name);
  absl::StatusOr<CommitRecord> commit = ParseCommit(*commit_bytes);
  if (!commit.ok()) return Prefixed(commit.status(), name);
  absl::StatusOr<std::string> bytes = fs.ReadFile(step_dir + "/MANIFEST", kMaxManifestBytes);
  if (!bytes.ok()) return absl::DataLossError(name + std::string(bytes.status().message()));
  if (bytes->size() != commit->manifest_size ||
      Checksum(bytes->data(), bytes->size()) != commit->manifest_checksum) {
    return absl::DataLossError(name + "MANIFEST: does not match the checksum in COMMIT");
  }
  absl::StatusOr<Manifest> m = ParseManifest(*bytes);
  if (!m.ok()) return Prefixed(m.status(), name);
  if (m->cursor.step != commit->step || (dir_step >= 0 && commit->step != dir_step)) {
    return absl::DataLossError(name + "COMMIT: step does not match the directory");
  }
  return m;
}

absl::Status CheckFileSizes(FileSystem& fs, const std::string& step_dir, const Manifest& m) {
  const std::string dir = std::filesystem::path(step_dir).filename().string();
  for (const ShardFileInfo& f : m.files) {
    absl::StatusOr<uint64_t> size = fs.FileSize(step_dir + "/" + f.name);
    if (!size.ok()) return absl::DataLossError(fmt::format("{}/{}: missing", dir, f.name));
    if (*size != f.size) {
      return absl::DataLossError(fmt::format("{}/{}: {} bytes, MANIFEST says {} (truncated at offset {})",
                                             dir, f.name, *size, f.size, std::min(*size, f.size)));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<ReadableFile*> ShardFiles::Open(uint32_t file) {
  if (open_[file] == nullptr) {
    const std::string path = step_dir_ + "/" + m_.files[file].name;
    absl::StatusOr<std::unique_ptr<ReadableFile>> opened = fs_.NewReadableFile(path);
    if (!opened.ok()) return absl::DataLossError(std::string(opened.status().message()));
    open_[file] = std::move(*opened);
  }
  return open_[file].get();
}

absl::Status ShardFiles::OpenAll() {
  for (uint32_t f = 0; f < open_.size(); ++f) SUBLET_RETURN_IF_ERROR(Open(f).status());
  return absl::OkStatus();
}

void ShardFiles::WillNeed(const Piece& piece, uint64_t begin, uint64_t end) {
  absl::StatusOr<ReadableFile*> file = Open(piece.file);
  if (file.ok()) (*file)->WillNeed(piece.file_offset + begin, end - begin);
}

absl::Status ShardFiles::ReadVerified(const Piece& piece, uint64_t begin, uint64_t end,
                                      std::byte* out) {
  SUBLET_ASSIGN_OR_RETURN(ReadableFile * file, Open(piece.file));
  absl::Status read = file->ReadAt(piece.file_offset + begin, out, end - begin);
  if (!read.ok()) return absl::DataLossError(std::string(read.message()));
  const uint64_t b = m_.block_size;
  for (uint64_t off = begin; off < end; off += b) {
    const uint64_t n = std::min(b, end - off);
    if (Checksum(out + (off - begin), n) != piece.checksums[off / b]) {
      const std::string dir = std::filesystem::path(step_dir_).filename().string();
      return absl::DataLossError(fmt::format("{}/{}: checksum mismatch in bytes [{}, {})", dir,
                                             m_.files[piece.file].name, piece.file_offset + off,
                                             piece.file_offset + off + n));
    }
  }
  return absl::OkStatus();
}

}  // namespace sublet::checkpoint::internal

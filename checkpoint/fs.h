// The filesystem as the checkpoint library sees it: a handful of calls, so
// that tests can fake a full disk, short writes or a crash at any point.
// PosixFileSystem is the real one. Every call is thread-safe; a WritableFile
// belongs to one thread.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/status.h"

namespace sublet::checkpoint {

// A file being written from the start. Append loops over short writes; a
// failure (ENOSPC becomes ResourceExhausted) leaves the file in an unknown
// state, which is fine because only whole committed checkpoints are read.
class WritableFile {
 public:
  virtual ~WritableFile() = default;
  virtual absl::Status Append(const void* data, size_t size) = 0;
  // Makes the data durable (fdatasync).
  virtual absl::Status Sync() = 0;
  virtual absl::Status Close() = 0;
};

// A file opened for reading at offsets; kept open across reads so that the
// kernel's readahead follows a sequential reader.
class ReadableFile {
 public:
  virtual ~ReadableFile() = default;
  // Exactly `size` bytes at `offset`; a file that ends first is DataLoss.
  virtual absl::Status ReadAt(uint64_t offset, void* data, size_t size) = 0;
  // Hints that [offset, offset + size) is read next (may start reading it).
  virtual void WillNeed(uint64_t offset, size_t size) = 0;
};

class FileSystem {
 public:
  virtual ~FileSystem() = default;

  // Creates or truncates `path`.
  virtual absl::StatusOr<std::unique_ptr<WritableFile>> NewWritableFile(const std::string& path) = 0;
  virtual absl::StatusOr<std::unique_ptr<ReadableFile>> NewReadableFile(const std::string& path) = 0;
  // Reads exactly `size` bytes at `offset`; a file that ends first is DataLoss
  // naming the path and offset.
  virtual absl::Status ReadAt(const std::string& path, uint64_t offset, void* data,
                              size_t size) = 0;
  // Reads the whole file, refusing files larger than `max_size` (InvalidArgument).
  virtual absl::StatusOr<std::string> ReadFile(const std::string& path, uint64_t max_size) = 0;
  virtual absl::StatusOr<uint64_t> FileSize(const std::string& path) = 0;
  virtual bool Exists(const std::string& path) = 0;
  virtual absl::Status CreateDir(const std::string& path) = 0;  // parents too; ok if present
  // Names of the entries directly inside `path` (no "." or "..").
  virtual absl::StatusOr<std::vector<std::string>> ListDir(const std::string& path) = 0;
  virtual absl::Status Rename(const std::string& from, const std::string& to) = 0;
  // fsync on the directory, so that entries created or renamed in it persist.
  virtual absl::Status SyncDir(const std::string& path) = 0;
  virtual absl::Status RemoveAll(const std::string& path) = 0;  // ok if absent
};

// PosixFileSystem's files start writeback (sync_file_range) of every this
// many bytes written, so that Sync() has little left to flush.
inline constexpr uint64_t kWritebackBytes = 16 << 20;

// The real thing: POSIX calls, retried on EINTR. Writes start writeback of
// each 16 MiB as it is appended (sync_file_range), so Sync() finds little
// left to flush and the disk stays busy while the writer checksums.
class PosixFileSystem : public FileSystem {
 public:
  absl::StatusOr<std::unique_ptr<WritableFile>> NewWritableFile(const std::string& path) override;
  absl::StatusOr<std::unique_ptr<ReadableFile>> NewReadableFile(const std::string& path) override;
  absl::Status ReadAt(const std::string& path, uint64_t offset, void* data, size_t size) override;
  absl::StatusOr<std::string> ReadFile(const std::string& path, uint64_t max_size) override;
  absl::StatusOr<uint64_t> FileSize(const std::string& path) override;
  bool Exists(const std::string& path) override;
  absl::Status CreateDir(const std::string& path) override;
  absl::StatusOr<std::vector<std::string>> ListDir(const std::string& path) override;
  absl::Status Rename(const std::string& from, const std::string& to) override;
  absl::Status SyncDir(const std::string& path) override;
  absl::Status RemoveAll(const std::string& path) override;
};

}  // namespace sublet::checkpoint

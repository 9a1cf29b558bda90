#include "checkpoint/fs.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <system_error>

#include "fmt/format.h"

namespace sublet::checkpoint {
namespace {

absl::Status ErrnoStatus(int error, const std::string& what, const std::string& path) {
  std::string message = fmt::format("{} {}: {}", what, path, std::strerror(error));
  switch (error) {
    case ENOSPC:
    case EDQUOT:
      return absl::ResourceExhaustedError(message);
    case ENOENT:
      return absl::NotFoundError(message);
    case EACCES:
    case EPERM:
      return absl::PermissionDeniedError(message);
    default:
      return absl::InternalError(message);
  }
}

// Closes the descriptor when it goes out of scope.
class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() {
    if (fd_ >= 0) close(fd_);
  }
  int get() const { return fd_; }

 private:
  int fd_;
};

int OpenRetrying(const std::string& path, int flags, mode_t mode = 0) {
  int fd;
  do {
    fd = open(path.c_str(), flags | O_CLOEXEC, mode);
  } while (fd < 0 && errno == EINTR);
  return fd;
}

class PosixWritableFile final : public WritableFile {
 public:
  PosixWritableFile(std::string path, int fd) : path_(std::move(path)), fd_(fd) {}
  ~PosixWritableFile() override {
    if (fd_ >= 0) close(fd_);
  }

  absl::Status Append(const void* data, size_t size) override {
    const char* p = static_cast<const char*>(data);
    while (size > 0) {
      ssize_t n = write(fd_, p, size);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return ErrnoStatus(errno, "writing", path_);
      if (n == 0) return ErrnoStatus(ENOSPC, "writing", path_);
      p += n;
      size -= static_cast<size_t>(n);
      written_ += static_cast<uint64_t>(n);
    }
    if (written_ - flushing_from_ >= kWritebackBytes) {
      // Best effort: Sync() reports any error that matters.
      sync_file_range(fd_, static_cast<off_t>(flushing_from_),
                      static_cast<off_t>(written_ - flushing_from_), SYNC_FILE_RANGE_WRITE);
      flushing_from_ = written_;
    }
    return absl::OkStatus();
  }

  absl::Status Sync() override {
    if (fdatasync(fd_) != 0) return ErrnoStatus(errno, "syncing", path_);
    return absl::OkStatus();
  }

  absl::Status Close() override {
    int fd = fd_;
    fd_ = -1;
    if (close(fd) != 0 && errno != EINTR) return ErrnoStatus(errno, "closing", path_);
    return absl::OkStatus();
  }

 private:
  std::string path_;
  int fd_;
  uint64_t written_ = 0;
  uint64_t flushing_from_ = 0;
};

absl::Status PreadFully(int fd, const std::string& path, uint64_t offset, void* data, size_t size) {
  char* p = static_cast<char*>(data);
  while (size > 0) {
    ssize_t n = pread(fd, p, size, static_cast<off_t>(offset));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoStatus(errno, "reading", path);
    if (n == 0) {
      return absl::DataLossError(fmt::format("{}: file ends at offset {}", path, offset));
    }
    p += n;
    offset += static_cast<uint64_t>(n);
    size -= static_cast<size_t>(n);
  }
  return absl::OkStatus();
}

class PosixReadableFile final : public ReadableFile {
 public:
  PosixReadableFile(std::string path, int fd) : path_(std::move(path)), fd_(fd) {
    posix_fadvise(fd_, 0, 0, POSIX_FADV_SEQUENTIAL);
  }
  ~PosixReadableFile() override { close(fd_); }
  absl::Status ReadAt(uint64_t offset, void* data, size_t size) override {
    return PreadFully(fd_, path_, offset, data, size);
  }
  void WillNeed(uint64_t offset, size_t size) override {
    posix_fadvise(fd_, static_cast<off_t>(offset), static_cast<off_t>(size), POSIX_FADV_WILLNEED);
  }

 private:
  std::string path_;
  int fd_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<ReadableFile>> PosixFileSystem::NewReadableFile(const std::string& path) {
  int fd = OpenRetrying(path, O_RDONLY);
  if (fd < 0) return ErrnoStatus(errno, "opening", path);
  return std::make_unique<PosixReadableFile>(path, fd);
}

absl::StatusOr<std::unique_ptr<WritableFile>> PosixFileSystem::NewWritableFile(
    const std::string& path) {
  int fd = OpenRetrying(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) return ErrnoStatus(errno, "creating", path);
  return std::make_unique<PosixWritableFile>(path, fd);
}

absl::Status PosixFileSystem::ReadAt(const std::string& path, uint64_t offset, void* data,
                                     size_t size) {
  Fd fd(OpenRetrying(path, O_RDONLY));
  if (fd.get() < 0) return ErrnoStatus(errno, "opening", path);
  return PreadFully(fd.get(), path, offset, data, size);
}

absl::StatusOr<std::string> PosixFileSystem::ReadFile(const std::string& path, uint64_t max_size) {
  SUBLET_ASSIGN_OR_RETURN(uint64_t size, FileSize(path));
  if (size > max_size) {
    return absl::InvalidArgumentError(
        fmt::format("{}: {} bytes, more than the limit of {}", path, size, max_size));
  }
  std::string data(size, '\0');
  SUBLET_RETURN_IF_ERROR(ReadAt(path, 0, data.data(), data.size()));
  return data;
}

absl::StatusOr<uint64_t> PosixFileSystem::FileSize(const std::string& path) {
  struct stat st;
  if (stat(path.c_str(), &st) != 0) return ErrnoStatus(errno, "stat", path);
  return static_cast<uint64_t>(st.st_size);
}

bool PosixFileSystem::Exists(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0;
}

absl::Status PosixFileSystem::CreateDir(const std::string& path) {
  std::error_code error;
  std::filesystem::create_directories(path, error);
  if (error) return ErrnoStatus(error.value(), "creating directory", path);
  return absl::OkStatus();
}

absl::StatusOr<std::vector<std::string>> PosixFileSystem::ListDir(const std::string& path) {
  DIR* dir = opendir(path.c_str());
  if (dir == nullptr) return ErrnoStatus(errno, "listing", path);
  std::vector<std::string> names;
  while (struct dirent* entry = readdir(dir)) {
    std::string name = entry->d_name;
    if (name != "." && name != "..") names.push_back(std::move(name));
  }
  closedir(dir);
  return names;
}

absl::Status PosixFileSystem::Rename(const std::string& from, const std::string& to) {
  if (rename(from.c_str(), to.c_str()) != 0) return ErrnoStatus(errno, "renaming to " + to, from);
  return absl::OkStatus();
}

absl::Status PosixFileSystem::SyncDir(const std::string& path) {
  Fd fd(OpenRetrying(path, O_RDONLY | O_DIRECTORY));
  if (fd.get() < 0) return ErrnoStatus(errno, "opening directory", path);
  if (fsync(fd.get()) != 0) return ErrnoStatus(errno, "syncing directory", path);
  return absl::OkStatus();
}

absl::Status PosixFileSystem::RemoveAll(const std::string& path) {
  std::error_code error;
  std::filesystem::remove_all(path, error);
  if (error) return ErrnoStatus(error.value(), "removing", path);
  return absl::OkStatus();
}

}  // namespace sublet::checkpoint

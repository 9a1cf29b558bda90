// Shared fixtures for the checkpoint tests: a synthetic model state whose
// bytes are a function of (tensor, step), ranks as threads, a scratch
// directory, and a filesystem that fails or crashes on cue.
#pragma once

#include <atomic>
#include <cstddef>
#include <functional>
#include <mutex>
#include <string>
#include <vector>

#include "checkpoint/checkpoint.h"

namespace sublet::checkpoint::testing {

// Parameters, optimizer state and odd shapes: split on dim 0 and 1, 3-D,
// replicated, scalar, shapes tp does not divide (some shards empty at tp 4).
std::vector<TensorSpec> SyntheticSpecs();

// The whole tensor's bytes at `step`.
std::vector<std::byte> GlobalBytes(const TensorSpec& spec, int64_t step);
// Shard `shard` of `tp` of `global`, row-major (written independently of
// the library's own slicing).
std::vector<std::byte> Slice(const TensorSpec& spec, const std::vector<std::byte>& global, int tp,
                             int shard);

// One rank's state: owns its buffers; shards() points into them.
struct RankState {
  std::vector<std::vector<std::byte>> buffers;
  std::vector<TensorShard> shards;
};
// Filled with step `step`'s bytes (or zeros when fill is false).
RankState MakeRankState(const std::vector<TensorSpec>& specs, int tp, int tp_rank, int64_t step,
                        bool fill = true);
// Whether every shard holds step `step`'s bytes.
bool HoldsStep(const RankState& state, int tp, int tp_rank, int64_t step);

Topology Topo(int dp, int tp, int world_rank);

// Runs fn(rank) on `n` threads and returns each rank's status.
std::vector<absl::Status> RunRanks(int n, const std::function<absl::Status(int)>& fn);

class ScratchDir {
 public:
  ScratchDir();
  ~ScratchDir();
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// Wraps the real filesystem. Writes fail with ENOSPC once `space_left`
// bytes have been appended in total (writing what fits first); with
// `crash_at_op` > 0 the process SIGKILLs itself at that mutating call
// (an Append first writes half its bytes).
class FaultyFileSystem final : public FileSystem {
 public:
  std::atomic<int64_t> space_left{INT64_MAX};
  std::atomic<int64_t> crash_at_op{0};
  std::atomic<int64_t> ops{0};
  std::string fail_path_substring;  // when set, ENOSPC only for matching paths

  // Where each Append to a shard file (shard-*.bin) took its bytes from.
  struct Source {
    const std::byte* data;
    size_t size;
  };
  std::vector<Source> ShardAppends() {
    std::lock_guard<std::mutex> lock(mu_);
    return shard_appends_;
  }

  absl::StatusOr<std::unique_ptr<WritableFile>> NewWritableFile(const std::string& path) override;
  absl::StatusOr<std::unique_ptr<ReadableFile>> NewReadableFile(const std::string& path) override {
    return real_.NewReadableFile(path);
  }
  absl::Status ReadAt(const std::string& path, uint64_t offset, void* data, size_t size) override {
    return real_.ReadAt(path, offset, data, size);
  }
  absl::StatusOr<std::string> ReadFile(const std::string& path, uint64_t max_size) override {
    return real_.ReadFile(path, max_size);
  }
  absl::StatusOr<uint64_t> FileSize(const std::string& path) override { return real_.FileSize(path); }
  bool Exists(const std::string& path) override { return real_.Exists(path); }
  absl::Status CreateDir(const std::string& path) override;
  absl::StatusOr<std::vector<std::string>> ListDir(const std::string& path) override {
    return real_.ListDir(path);
  }
  absl::Status Rename(const std::string& from, const std::string& to) override;
  absl::Status SyncDir(const std::string& path) override;
  absl::Status RemoveAll(const std::string& path) override;

  // Counts a mutating call; SIGKILLs when it is the chosen one.
  void Op();
  bool CrashesNow() { return crash_at_op > 0 && ops + 1 == crash_at_op; }

 private:
  friend class FaultyFile;
  PosixFileSystem real_;
  std::mutex mu_;
  std::vector<Source> shard_appends_;
};

// Flips one bit of the file at `offset`; truncates it to `size`.
void FlipByte(const std::string& path, uint64_t offset);
void Truncate(const std::string& path, uint64_t size);

}  // namespace sublet::checkpoint::testing

namespace sublet::checkpoint::testing {

// Small blocks and splits so that tiny tensors still make many pieces.
SaveOptions SmallSaveOptions(const std::string& dir, Topology topology);

// Saves step `step` of the synthetic state from dp*tp thread ranks; returns
// rank 0's status (all ranks return the same; the helper checks that).
// `lineage` is the run's (SaveOptions::run).
absl::Status SaveWorld(FileSystem& fs, const std::string& dir, int dp, int tp, int64_t step,
                       int keep = 0, const std::string& lineage = "");

struct WorldLoad {
  absl::Status status;
  LoadResult result;       // rank 0's
  bool all_hold_step = false;  // every rank's buffers hold result.step's bytes
};
// Loads into fresh zeroed buffers on dp*tp thread ranks.
WorldLoad LoadWorld(FileSystem& fs, const std::string& dir, int dp, int tp,
                    uint64_t max_read_bytes = 8192);

}  // namespace sublet::checkpoint::testing

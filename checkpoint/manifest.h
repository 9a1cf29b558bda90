// The on-disk description of one checkpoint: MANIFEST and COMMIT.
//
//   <dir>/step-00000400/
//     MANIFEST         topology at save, every tensor's global shape, dtype and
//                      split, the pieces each shard file holds, the cursor
//     shard-NNNNN.bin  raw bytes written by world rank NNNNN
//     COMMIT           written last: the step and the manifest's size and xxh3
//
// A piece is a contiguous byte range of one tensor-parallel shard of one
// tensor (its row-major local bytes), stored contiguously in one shard file,
// with an xxh3-64 checksum per block of `block_size` bytes (1 MiB by default)
// so that a reader can verify exactly the ranges it reads.
//
// ParseManifest and ParseCommit are the only places that interpret these
// bytes; they treat them as untrusted (limits below, every index checked,
// pieces must tile each shard exactly) and fail with DataLoss.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace sublet::checkpoint {

enum class DType : uint8_t { kF32 = 1, kF16 = 2, kBF16 = 3, kF64 = 4, kI32 = 5, kI64 = 6, kU8 = 7 };

// Bytes per element, or 0 for a value outside the enum.
size_t DTypeSize(DType dtype);
std::string DTypeName(DType dtype);

// A tensor as the whole model sees it, and how tensor parallelism cuts it.
struct TensorSpec {
  std::string name;
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;  // global shape
  // -1: every tensor-parallel rank holds the whole tensor (written once).
  // d >= 0: dimension d is cut into tp contiguous ranges; rank t holds
  // [size*t/tp, size*(t+1)/tp) (ranges may be uneven or empty).
  int split_dim = -1;

  bool operator==(const TensorSpec&) const = default;
};

// Where training resumes.
struct Cursor {
  int64_t step = 0;
  uint64_t data_position = 0;  // e.g. sequences consumed
  std::string rng_state;       // opaque to us (rank 0's), at most kMaxRngStateBytes
};

// The run that wrote a checkpoint. `lineage` is chosen when a run starts
// from nothing and carried over by every resume, so the checkpoints of one
// training run share it whatever topology saved them; retention deletes only
// checkpoints of its own lineage. `config` is the run's own description of
// what defines it (sublet-train: steps, seq-len, data, global batch), which a
// resume compares with its own. Both empty in checkpoints of format 1.
struct RunInfo {
  std::string lineage;  // at most kMaxRunInfoBytes
  std::string config;   // at most kMaxRunInfoBytes
  bool operator==(const RunInfo&) const = default;
};

struct ShardFileInfo {
  std::string name;  // "shard-NNNNN.bin"
  uint64_t size = 0;
};

struct Piece {
  uint32_t tensor = 0;        // index into Manifest::tensors
  uint32_t tp_shard = 0;      // 0 for replicated tensors
  uint64_t shard_offset = 0;  // byte offset within that shard's local bytes
  uint32_t file = 0;          // index into Manifest::files
  uint64_t file_offset = 0;
  uint64_t length = 0;
  std::vector<uint64_t> checksums;  // xxh3-64 per block_size block of the piece
};

struct Manifest {
  int dp = 1;
  int tp = 1;
  uint64_t block_size = 1 << 20;
  Cursor cursor;
  RunInfo run;
  std::vector<TensorSpec> tensors;
  std::vector<ShardFileInfo> files;
  std::vector<Piece> pieces;

  uint64_t TotalBytes() const;
};

struct CommitRecord {
  int64_t step = 0;
  uint64_t manifest_size = 0;
  uint64_t manifest_checksum = 0;  // xxh3-64 of the MANIFEST bytes
};

// Limits on what a reader accepts.
inline constexpr uint64_t kMaxManifestBytes = 256ull << 20;
inline constexpr uint64_t kMaxCommitBytes = 4096;
inline constexpr uint64_t kMaxRngStateBytes = 1 << 20;
inline constexpr uint64_t kMaxRunInfoBytes = 64 << 10;
inline constexpr size_t kMaxTensors = 1 << 20;
inline constexpr size_t kMaxNameBytes = 1024;
inline constexpr size_t kMaxDims = 8;
inline constexpr int kMaxParallel = 1 << 16;  // dp and tp each
inline constexpr uint64_t kMaxTensorBytes = 1ull << 50;

std::string EncodeManifest(const Manifest& manifest);
absl::StatusOr<Manifest> ParseManifest(std::string_view bytes);
std::string EncodeCommit(const CommitRecord& commit);
absl::StatusOr<CommitRecord> ParseCommit(std::string_view bytes);

uint64_t Checksum(const void* data, size_t size);  // xxh3-64

// "step-00000400"; ParseStepDirName accepts exactly what StepDirName makes
// (eight or more digits).
std::string StepDirName(int64_t step);
bool ParseStepDirName(std::string_view name, int64_t* step);
std::string ShardFileName(int world_rank);

// Sharding arithmetic shared by writer and reader.
uint64_t NumElements(const std::vector<int64_t>& shape);
int NumShards(const TensorSpec& spec, int tp);  // tp when split, else 1
// The [begin, end) range of the split dimension that `shard` holds.
std::pair<int64_t, int64_t> ShardRange(const TensorSpec& spec, int tp, int shard);
std::vector<int64_t> LocalShape(const TensorSpec& spec, int tp, int shard);
uint64_t LocalBytes(const TensorSpec& spec, int tp, int shard);
// Checks names, dtype, shape and split against the limits (InvalidArgument).
absl::Status ValidateSpec(const TensorSpec& spec);

}  // namespace sublet::checkpoint

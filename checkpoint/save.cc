// SaveCheckpoint: the numbered protocol in checkpoint.h.
#include <algorithm>
#include <chrono>
#include <filesystem>
#include <set>

#include "checkpoint/checkpoint.h"
#include "checkpoint/internal/plan.h"
#include "checkpoint/internal/wire.h"
#include "common/log.h"
#include "fmt/format.h"

namespace sublet::checkpoint {
namespace {

using internal::ByteReader;
using internal::ByteWriter;
using internal::PlannedPiece;

absl::Status ValidateInputs(const Group& group, const SaveOptions& o, const Cursor& cursor,
                            absl::Span<const TensorShard> shards) {
  const Topology& t = o.topology;
  if (t.dp < 1 || t.tp < 1 || t.dp > kMaxParallel || t.tp > kMaxParallel || t.dp_rank < 0 ||
      t.dp_rank >= t.dp || t.tp_rank < 0 || t.tp_rank >= t.tp) {
    return absl::InvalidArgumentError("checkpoint: bad topology");
  }
  if (group.size() != t.world_size() || group.rank() != t.world_rank()) {
    return absl::InvalidArgumentError("checkpoint: group does not match the topology");
  }
  if (o.dir.empty()) return absl::InvalidArgumentError("checkpoint: no directory");
  if (o.block_size < 4096 || o.block_size > (1ull << 30)) {
    return absl::InvalidArgumentError("checkpoint: block size outside [4 KiB, 1 GiB]");
  }
  if (cursor.step < 0 || cursor.rng_state.size() > kMaxRngStateBytes) {
    return absl::InvalidArgumentError("checkpoint: bad cursor");
  }
  if (shards.size() > kMaxTensors) return absl::InvalidArgumentError("checkpoint: too many tensors");
  std::set<std::string> names;
  for (const TensorShard& s : shards) {
    SUBLET_RETURN_IF_ERROR(ValidateSpec(s.spec));
    if (!names.insert(s.spec.name).second) {
      return absl::InvalidArgumentError(fmt::format("tensor '{}' given twice", s.spec.name));
    }
    const uint64_t want = LocalBytes(s.spec, t.tp, t.tp_rank);
    if (s.size != want || (want > 0 && s.data == nullptr)) {
      return absl::InvalidArgumentError(fmt::format(
          "tensor '{}': this rank's shard has {} bytes, expected {}", s.spec.name, s.size, want));
    }
  }
  return absl::OkStatus();
}

uint64_t SpecHash(absl::Span<const TensorShard> shards) {
  Manifest m;
  for (const TensorShard& s : shards) m.tensors.push_back(s.spec);
  std::string bytes = EncodeManifest(m);
  return Checksum(bytes.data(), bytes.size());
}

// Step 1: rank 0 prepares the temporary directory; all agree on what to save.
absl::Status Prepare(FileSystem& fs, Group& group, const SaveOptions& o, const Cursor& cursor,
                     absl::Span<const TensorShard> shards, const absl::Status& valid) {
  absl::Status mine = valid;
  const std::string tmp = o.dir + "/" + internal::TempDirName(cursor.step);
  if (mine.ok() && group.rank() == 0) {
    if (fs.Exists(o.dir + "/" + StepDirName(cursor.step))) {
      mine = absl::AlreadyExistsError(
          fmt::format("checkpoint {} already exists in {}", StepDirName(cursor.step), o.dir));
    }
    if (mine.ok() && !fs.Exists(o.dir)) {
      mine = fs.CreateDir(o.dir);
      std::string parent = std::filesystem::path(o.dir).parent_path().string();
      if (mine.ok() && !parent.empty()) mine = fs.SyncDir(parent);
    }
    if (mine.ok()) mine = fs.RemoveAll(tmp);
    if (mine.ok()) mine = fs.CreateDir(tmp);
  }
  ByteWriter w;
  internal::PutStatus(w, mine);
  w.I64(cursor.step);
  w.U32(static_cast<uint32_t>(o.topology.dp));
  w.U32(static_cast<uint32_t>(o.topology.tp));
  w.U64(SpecHash(shards));
  SUBLET_ASSIGN_OR_RETURN(std::vector<std::string> all, group.AllGather(w.str()));
  for (size_t r = 0; r < all.size(); ++r) {
    ByteReader reader(all[r]);
    absl::Status status = internal::GetStatus(reader);
    if (!status.ok()) {
      return absl::Status(status.code(), fmt::format("rank {}: {}", r, std::string(status.message())));
    }
    int64_t step;
    uint32_t dp, tp;
    uint64_t hash;
    if (!reader.I64(&step) || !reader.U32(&dp) || !reader.U32(&tp) || !reader.U64(&hash)) {
      return absl::InternalError("malformed message from a peer rank");
    }
    if (step != cursor.step || static_cast<int>(dp) != o.topology.dp ||
        static_cast<int>(tp) != o.topology.tp || hash != SpecHash(shards)) {
      return absl::FailedPreconditionError(fmt::format(
          "ranks disagree on the checkpoint: rank {} saves step {} at dp {} tp {}, rank {} step {}",
          r, step, dp, tp, group.rank(), cursor.step));
    }
  }
  return absl::OkStatus();
}

// Step 2: this rank's pieces into its shard file; returns their checksums.
absl::StatusOr<std::vector<uint64_t>> WriteMyShard(FileSystem& fs, const std::string& path,
                                                   const std::vector<PlannedPiece>& plan, int me,
                                                   absl::Span<const TensorShard> shards,
                                                   uint64_t block_size, uint64_t* written) {
  SUBLET_ASSIGN_OR_RETURN(std::unique_ptr<WritableFile> file, fs.NewWritableFile(path));
  std::vector<uint64_t> checksums;
  const uint64_t chunk = std::max<uint64_t>(block_size, (16 << 20) / block_size * block_size);
  for (const PlannedPiece& p : plan) {
    if (p.writer != me) continue;
    const std::byte* base = shards[p.tensor].data + p.shard_offset;
    for (uint64_t off = 0; off < p.length; off += chunk) {
      const uint64_t n = std::min(chunk, p.length - off);
      for (uint64_t b = 0; b < n; b += block_size) {
        checksums.push_back(Checksum(base + off + b, std::min(block_size, n - b)));
      }
      SUBLET_RETURN_IF_ERROR(file->Append(base + off, n));
      *written += n;
    }
  }
  SUBLET_RETURN_IF_ERROR(file->Sync());
  SUBLET_RETURN_IF_ERROR(file->Close());
  return checksums;
}

// Step 4 on rank 0: manifest, COMMIT, rename, syncs, retention.
absl::Status Commit(FileSystem& fs, const SaveOptions& o, const Cursor& cursor,
                    absl::Span<const TensorShard> shards, const std::vector<PlannedPiece>& plan,
                    const std::vector<std::string>& reports) {
  Manifest m;
  m.dp = o.topology.dp;
  m.tp = o.topology.tp;
  m.block_size = o.block_size;
  m.cursor = cursor;
  m.run = o.run;
  for (const TensorShard& s : shards) m.tensors.push_back(s.spec);
  std::vector<ByteReader> readers;
  for (size_t r = 0; r < reports.size(); ++r) {
    readers.emplace_back(reports[r]);
    internal::GetStatus(readers.back()).IgnoreError();  // all OK by now
    ShardFileInfo file{ShardFileName(static_cast<int>(r)), 0};
    if (!readers.back().U64(&file.size)) return absl::InternalError("malformed shard report");
    m.files.push_back(std::move(file));
  }
  for (const PlannedPiece& p : plan) {
    Piece piece{p.tensor, p.tp_shard, p.shard_offset, static_cast<uint32_t>(p.writer),
                p.file_offset, p.length, {}};
    piece.checksums.resize((p.length + o.block_size - 1) / o.block_size);
    for (uint64_t& c : piece.checksums) {
      if (!readers[p.writer].U64(&c)) return absl::InternalError("malformed shard report");
    }
    m.pieces.push_back(std::move(piece));
  }
  const std::string tmp = o.dir + "/" + internal::TempDirName(cursor.step);
  const std::string manifest = EncodeManifest(m);
  SUBLET_RETURN_IF_ERROR(internal::WriteSmallFile(fs, tmp + "/MANIFEST", manifest));
  CommitRecord commit{cursor.step, manifest.size(), Checksum(manifest.data(), manifest.size())};
  SUBLET_RETURN_IF_ERROR(internal::WriteSmallFile(fs, tmp + "/COMMIT", EncodeCommit(commit)));
  SUBLET_RETURN_IF_ERROR(fs.SyncDir(tmp));
  SUBLET_RETURN_IF_ERROR(fs.Rename(tmp, o.dir + "/" + StepDirName(cursor.step)));
  SUBLET_RETURN_IF_ERROR(fs.SyncDir(o.dir));
  absl::Status kept = ApplyRetention(fs, o.dir, o.keep, o.protect_step, o.run.lineage);
  if (!kept.ok()) {
    Log(LogLevel::kWarn, "checkpoint_retention_failed", {{"error", std::string(kept.message())}});
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<SaveStats> SaveCheckpoint(FileSystem& fs, Group& group, const SaveOptions& o,
                                         const Cursor& cursor,
                                         absl::Span<const TensorShard> shards) {
  const auto start = std::chrono::steady_clock::now();
  SUBLET_RETURN_IF_ERROR(Prepare(fs, group, o, cursor, shards, ValidateInputs(group, o, cursor, shards)));
  const std::string tmp = o.dir + "/" + internal::TempDirName(cursor.step);
  std::vector<TensorSpec> specs;
  for (const TensorShard& s : shards) specs.push_back(s.spec);
  const std::vector<PlannedPiece> plan =
      internal::PlanPieces(specs, o.topology.dp, o.topology.tp, o.min_split_bytes);

  SaveStats stats;
  stats.step = cursor.step;
  absl::StatusOr<std::vector<uint64_t>> checksums =
      WriteMyShard(fs, tmp + "/" + ShardFileName(group.rank()), plan, group.rank(), shards,
                   o.block_size, &stats.bytes_written);
  ByteWriter report;
  internal::PutStatus(report, checksums.status());
  report.U64(stats.bytes_written);
  if (checksums.ok()) {
    for (uint64_t c : *checksums) report.U64(c);
  }
  SUBLET_ASSIGN_OR_RETURN(std::vector<std::string> reports, group.AllGather(report.str()));

  absl::Status outcome;
  if (group.rank() == 0) {
    for (size_t r = 0; r < reports.size() && outcome.ok(); ++r) {
      ByteReader reader(reports[r]);
      absl::Status status = internal::GetStatus(reader);
      if (!status.ok()) {
        outcome = absl::Status(status.code(),
                               fmt::format("rank {}: {}", r, std::string(status.message())));
      }
    }
    if (outcome.ok()) outcome = Commit(fs, o, cursor, shards, plan, reports);
    if (!outcome.ok()) fs.RemoveAll(tmp).IgnoreError();
  }
  // Step 5: rank 0's outcome is everyone's.
  ByteWriter w;
  internal::PutStatus(w, outcome);
  SUBLET_ASSIGN_OR_RETURN(std::vector<std::string> all, group.AllGather(w.str()));
  ByteReader reader(all[0]);
  SUBLET_RETURN_IF_ERROR(internal::GetStatus(reader));
  for (const PlannedPiece& p : plan) stats.total_bytes += p.length;
  stats.persist_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return stats;
}

}  // namespace sublet::checkpoint

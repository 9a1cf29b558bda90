// ListCheckpoints, VerifyCheckpoint and ApplyRetention.
#include <algorithm>
#include <filesystem>
#include <vector>

#include "checkpoint/checkpoint.h"
#include "checkpoint/internal/read.h"
#include "checkpoint/internal/wire.h"
#include "fmt/format.h"

namespace sublet::checkpoint {

std::string StateName(CheckpointState state) {
  switch (state) {
    case CheckpointState::kCommitted: return "committed";
    case CheckpointState::kPartial: return "partial";
    case CheckpointState::kCorrupt: return "corrupt";
  }
  return "corrupt";
}

absl::StatusOr<std::vector<CheckpointInfo>> ListCheckpoints(FileSystem& fs, const std::string& dir) {
  SUBLET_ASSIGN_OR_RETURN(std::vector<std::string> names, fs.ListDir(dir));
  std::vector<CheckpointInfo> list;
  for (const std::string& name : names) {
    CheckpointInfo info;
    if (!ParseStepDirName(name, &info.step)) continue;
    info.path = dir + "/" + name;
    absl::StatusOr<Manifest> m = internal::ReadCommitted(fs, info.path, info.step);
    absl::Status status = m.status();
    if (status.ok()) status = internal::CheckFileSizes(fs, info.path, *m);
    if (status.ok()) {
      info.state = CheckpointState::kCommitted;
      info.manifest = std::move(*m);
    } else {
      info.state = absl::IsFailedPrecondition(status) ? CheckpointState::kPartial
                                                      : CheckpointState::kCorrupt;
      info.problem = std::string(status.message());
    }
    list.push_back(std::move(info));
  }
  std::sort(list.begin(), list.end(),
            [](const CheckpointInfo& a, const CheckpointInfo& b) { return a.step > b.step; });
  return list;
}

absl::StatusOr<Manifest> VerifyCheckpoint(FileSystem& fs, const std::string& step_dir) {
  if (!fs.Exists(step_dir)) return absl::NotFoundError(fmt::format("{}: no such directory", step_dir));
  int64_t step = -1;
  std::string name = std::filesystem::path(step_dir).lexically_normal().filename().string();
  if (name.empty()) name = std::filesystem::path(step_dir).lexically_normal().parent_path().filename().string();
  if (!ParseStepDirName(name, &step)) {
    return absl::InvalidArgumentError(fmt::format("{}: not a step-NNNNNNNN directory", step_dir));
  }
  SUBLET_ASSIGN_OR_RETURN(Manifest m, internal::ReadCommitted(fs, step_dir, step));
  SUBLET_RETURN_IF_ERROR(internal::CheckFileSizes(fs, step_dir, m));
  std::vector<std::byte> buffer;
  internal::ShardFiles files(fs, step_dir, m);
  const uint64_t window = std::max<uint64_t>(m.block_size, (16 << 20) / m.block_size * m.block_size);
  for (const Piece& p : m.pieces) {
    for (uint64_t off = 0; off < p.length; off += window) {
      const uint64_t end = std::min(p.length, off + window);
      buffer.resize(end - off);
      SUBLET_RETURN_IF_ERROR(files.ReadVerified(p, off, end, buffer.data()));
    }
  }
  return m;
}

absl::Status ApplyRetention(FileSystem& fs, const std::string& dir, int keep,
                            std::optional<int64_t> protect_step, const std::string& lineage,
                            const std::string& in_progress) {
  SUBLET_ASSIGN_OR_RETURN(std::vector<CheckpointInfo> list, ListCheckpoints(fs, dir));
  int kept = 0;
  absl::Status result;
  // Newest first. Renamed out of the way first, so that a crash mid-removal
  // leaves a .tmp- directory (removed next time) rather than a half-deleted
  // step.
  for (const CheckpointInfo& info : list) {
    if (info.state != CheckpointState::kCommitted || info.manifest->run.lineage != lineage) {
      continue;
    }
    if (keep <= 0 || kept < keep || (protect_step && *protect_step == info.step)) {
      ++kept;
      continue;
    }
    const std::string doomed = dir + "/.tmp-deleting-" + StepDirName(info.step);
    absl::Status removed = fs.Rename(info.path, doomed);
    if (removed.ok()) removed = fs.RemoveAll(doomed);
    if (result.ok()) result = removed;
  }
  SUBLET_ASSIGN_OR_RETURN(std::vector<std::string> names, fs.ListDir(dir));
  for (const std::string& name : names) {
    if (name.rfind(".tmp-", 0) == 0 && name != in_progress) {
      absl::Status removed = fs.RemoveAll(dir + "/" + name);
      if (result.ok()) result = removed;
    }
  }
  if (result.ok()) result = fs.SyncDir(dir);
  return result;
}

}  // namespace sublet::checkpoint

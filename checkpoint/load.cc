// LoadCheckpoint: pick the newest step that verifies on every rank, and
// reshard it into this rank's buffers reading only the ranges it needs.
//
// Resharding: a tensor split on dimension k is, in each tensor-parallel
// shard, `outer` runs (outer = the product of the dimensions before k) of
// rows of dimension k. The rows a target shard wants from a saved shard are
// the intersection of their [begin, end) ranges; they form one contiguous
// run per outer index in both layouts (one run overall when k == 0). Runs
// are then cut where the saved pieces end, and each piece is read in
// block-aligned windows of at most max_read_bytes, straight into the
// destination when a window is exactly one run, by read_threads threads.
#include <algorithm>
#include <atomic>
#include <cstring>
#include <map>
#include <mutex>
#include <thread>

#include "checkpoint/checkpoint.h"
#include "checkpoint/internal/bytes.h"
#include "checkpoint/internal/read.h"
#include "checkpoint/internal/wire.h"
#include "common/log.h"
#include "fmt/format.h"

namespace sublet::checkpoint {
namespace {

using internal::ByteReader;
using internal::ByteWriter;

struct Run {
  uint64_t src;  // offset in the saved shard's (or piece's) bytes
  std::byte* dst;
  uint64_t len;
};

// The runs of saved shard `s` that target shard `t` of `tp` needs.
std::vector<Run> RunsFrom(const TensorSpec& spec, int saved_tp, int s, int tp, int t,
                          std::byte* data) {
  std::vector<Run> runs;
  if (spec.split_dim < 0) {
    const uint64_t bytes = LocalBytes(spec, tp, t);
    if (bytes > 0) runs.push_back({0, data, bytes});
    return runs;
  }
  const int k = spec.split_dim;
  auto [a, b] = ShardRange(spec, tp, t);
  auto [as, bs] = ShardRange(spec, saved_tp, s);
  const int64_t lo = std::max(a, as), hi = std::min(b, bs);
  if (lo >= hi) return runs;
  uint64_t outer = 1, inner = DTypeSize(spec.dtype);
  for (int d = 0; d < k; ++d) outer *= static_cast<uint64_t>(spec.shape[d]);
  for (size_t d = k + 1; d < spec.shape.size(); ++d) inner *= static_cast<uint64_t>(spec.shape[d]);
  const uint64_t len = static_cast<uint64_t>(hi - lo) * inner;
  for (uint64_t o = 0; o < outer && len > 0; ++o) {
    Run r{(o * static_cast<uint64_t>(bs - as) + static_cast<uint64_t>(lo - as)) * inner,
          data + (o * static_cast<uint64_t>(b - a) + static_cast<uint64_t>(lo - a)) * inner, len};
    if (!runs.empty() && runs.back().src + runs.back().len == r.src &&
        runs.back().dst + runs.back().len == r.dst) {
      runs.back().len += r.len;
    } else {
      runs.push_back(r);
    }
  }
  return runs;
}

class StepLoader {
 public:
  StepLoader(FileSystem& fs, const LoadOptions& o, std::string step_dir, Manifest m)
      : o_(o), m_(std::move(m)), files_(fs, std::move(step_dir), m_) {
    for (uint32_t i = 0; i < m_.tensors.size(); ++i) by_name_[m_.tensors[i].name] = i;
    for (const Piece& p : m_.pieces) by_shard_[{p.tensor, p.tp_shard}].push_back(&p);
    for (auto& [key, pieces] : by_shard_) {
      std::sort(pieces.begin(), pieces.end(),
                [](const Piece* x, const Piece* y) { return x->shard_offset < y->shard_offset; });
    }
  }

  absl::Status Load(absl::Span<const TensorShard> shards) {
    std::map<const Piece*, std::vector<Run>> parts;
    for (const TensorShard& shard : shards) SUBLET_RETURN_IF_ERROR(Plan(shard, parts));
    for (auto& [piece, runs] : parts) AddWindows(*piece, runs);
    return ReadWindows();
  }

  uint64_t bytes_read() const { return bytes_read_; }

 private:
  absl::Status Plan(const TensorShard& shard, std::map<const Piece*, std::vector<Run>>& parts) {
    auto it = by_name_.find(shard.spec.name);
    if (it == by_name_.end()) {
      return absl::InvalidArgumentError(fmt::format("tensor '{}' is not in the checkpoint", shard.spec.name));
    }
    const TensorSpec& saved = m_.tensors[it->second];
    if (!(saved == shard.spec)) {
      return absl::InvalidArgumentError(fmt::format(
          "tensor '{}': saved as {} with another shape or split", shard.spec.name, DTypeName(saved.dtype)));
    }
    for (int s = 0; s < NumShards(saved, m_.tp); ++s) {
      const std::vector<const Piece*>& pieces = by_shard_[{it->second, static_cast<uint32_t>(s)}];
      for (const Run& run : RunsFrom(saved, m_.tp, s, o_.topology.tp, o_.topology.tp_rank, shard.data)) {
        CutAtPieces(run, pieces, parts);
      }
    }
    return absl::OkStatus();
  }

  static void CutAtPieces(Run run, const std::vector<const Piece*>& pieces,
                          std::map<const Piece*, std::vector<Run>>& parts) {
    auto it = std::upper_bound(pieces.begin(), pieces.end(), run.src,
                               [](uint64_t off, const Piece* p) { return off < p->shard_offset; });
    if (it != pieces.begin()) --it;
    for (; run.len > 0 && it != pieces.end(); ++it) {
      const Piece* p = *it;
      const uint64_t n = std::min(run.len, p->shard_offset + p->length - run.src);
      parts[p].push_back({run.src - p->shard_offset, run.dst, n});
      run.src += n;
      run.dst += n;
      run.len -= n;
    }
  }

  struct Window {
    const Piece* piece;
    uint64_t lo, hi;  // block-aligned bytes of the piece to read
    std::vector<Run> parts;
  };

  // Cuts the parts of one piece into windows aligned to `window` bytes (a
  // multiple of the block size), each covering the blocks its parts touch.
  void AddWindows(const Piece& piece, const std::vector<Run>& runs) {
    const uint64_t block = m_.block_size;
    const uint64_t window = std::max(block, o_.max_read_bytes / block * block);
    std::map<uint64_t, std::vector<Run>> by_window;
    for (Run r : runs) {
      while (r.len > 0) {
        const uint64_t w = r.src / window;
        const uint64_t n = std::min(r.len, (w + 1) * window - r.src);
        by_window[w].push_back({r.src, r.dst, n});
        r.src += n;
        r.dst += n;
        r.len -= n;
      }
    }
    for (auto& [w, parts] : by_window) {
      uint64_t lo = UINT64_MAX, hi = 0;
      for (const Run& r : parts) {
        lo = std::min(lo, r.src);
        hi = std::max(hi, r.src + r.len);
      }
      windows_.push_back({&piece, lo / block * block,
                          std::min(piece.length, (hi + block - 1) / block * block), std::move(parts)});
    }
  }

  // Reads and verifies windows on a few threads: more reads in flight, and
  // checksumming spread over cores. Each thread hints the window it will
  // probably take next so the kernel fetches it meanwhile.
  absl::Status ReadWindows() {
    SUBLET_RETURN_IF_ERROR(files_.OpenAll());
    const size_t threads = std::max<size_t>(1, std::min<size_t>(o_.read_threads, windows_.size()));
    std::atomic<size_t> next{0};
    std::atomic<uint64_t> bytes{0};
    std::mutex mutex;
    absl::Status first_error;
    auto work = [&] {
      std::vector<std::byte> scratch;
      for (size_t i = next++; i < windows_.size(); i = next++) {
        if (i + threads < windows_.size()) {
          const Window& ahead = windows_[i + threads];
          files_.WillNeed(*ahead.piece, ahead.lo, ahead.hi);
        }
        absl::Status s = ReadWindow(windows_[i], scratch);
        bytes += windows_[i].hi - windows_[i].lo;
        if (!s.ok()) {
          std::lock_guard<std::mutex> lock(mutex);
          if (first_error.ok()) first_error = s;
          next = windows_.size();
        }
      }
    };
    std::vector<std::thread> pool;
    for (size_t t = 1; t < threads; ++t) pool.emplace_back(work);
    work();
    for (std::thread& t : pool) t.join();
    bytes_read_ = bytes;
    return first_error;
  }

  // Straight into the destination when the window is exactly one run.
  absl::Status ReadWindow(const Window& w, std::vector<std::byte>& scratch) {
    if (w.parts.size() == 1 && w.parts[0].src == w.lo && w.parts[0].len == w.hi - w.lo) {
      return files_.ReadVerified(*w.piece, w.lo, w.hi, w.parts[0].dst);
    }
    scratch.resize(w.hi - w.lo);
    SUBLET_RETURN_IF_ERROR(files_.ReadVerified(*w.piece, w.lo, w.hi, scratch.data()));
    for (const Run& r : w.parts) std::memcpy(r.dst, scratch.data() + (r.src - w.lo), r.len);
    return absl::OkStatus();
  }

  const LoadOptions& o_;
  Manifest m_;
  internal::ShardFiles files_;
  std::map<std::string, uint32_t> by_name_;
  std::map<std::pair<uint32_t, uint32_t>, std::vector<const Piece*>> by_shard_;
  std::vector<Window> windows_;
  uint64_t bytes_read_ = 0;
};

absl::Status ValidateTargets(const Group& group, const LoadOptions& o,
                             absl::Span<const TensorShard> shards) {
  const Topology& t = o.topology;
  if (t.dp < 1 || t.tp < 1 || t.dp_rank < 0 || t.dp_rank >= t.dp || t.tp_rank < 0 ||
      t.tp_rank >= t.tp || group.size() != t.world_size() || group.rank() != t.world_rank()) {
    return absl::InvalidArgumentError("checkpoint: bad topology or group");
  }
  for (const TensorShard& s : shards) {
    SUBLET_RETURN_IF_ERROR(ValidateSpec(s.spec));
    const uint64_t want = LocalBytes(s.spec, t.tp, t.tp_rank);
    if (s.size != want || (want > 0 && s.data == nullptr)) {
      return absl::InvalidArgumentError(fmt::format(
          "tensor '{}': this rank's buffer has {} bytes, expected {}", s.spec.name, s.size, want));
    }
  }
  return absl::OkStatus();
}

// Rank 0 lists the directory; everyone uses its list, newest first.
absl::StatusOr<std::vector<int64_t>> Candidates(FileSystem& fs, Group& group, const LoadOptions& o) {
  ByteWriter w;
  if (group.rank() == 0) {
    absl::StatusOr<std::vector<std::string>> names = fs.ListDir(o.dir);
    std::vector<int64_t> steps;
    if (names.ok()) {
      for (const std::string& name : *names) {
        int64_t step;
        if (ParseStepDirName(name, &step) && (!o.step || *o.step == step)) steps.push_back(step);
      }
    }
    std::sort(steps.rbegin(), steps.rend());
    w.U64(steps.size());
    for (int64_t s : steps) w.I64(s);
  }
  SUBLET_ASSIGN_OR_RETURN(std::vector<std::string> all, group.AllGather(w.str()));
  ByteReader r(all[0]);
  uint64_t n;
  std::vector<int64_t> steps;
  if (!r.U64(&n) || n > r.remaining() / 8) return absl::InternalError("malformed step list");
  steps.resize(n);
  for (int64_t& s : steps) r.I64(&s);
  return steps;
}

}  // namespace

absl::StatusOr<LoadResult> LoadCheckpoint(FileSystem& fs, Group& group, const LoadOptions& o,
                                          absl::Span<const TensorShard> shards) {
  SUBLET_RETURN_IF_ERROR(internal::AgreeOk(group, ValidateTargets(group, o, shards)));
  SUBLET_ASSIGN_OR_RETURN(std::vector<int64_t> steps, Candidates(fs, group, o));
  LoadResult result;
  for (int64_t step : steps) {
    const std::string step_dir = o.dir + "/" + StepDirName(step);
    absl::StatusOr<Manifest> m = internal::ReadCommitted(fs, step_dir, step);
    absl::Status mine = m.status();
    if (mine.ok()) mine = internal::CheckFileSizes(fs, step_dir, *m);
    uint64_t bytes_read = 0;
    if (mine.ok()) {
      StepLoader loader(fs, o, step_dir, *m);
      mine = loader.Load(shards);
      bytes_read = loader.bytes_read();
    }
    absl::Status all = internal::AgreeOk(group, mine);
    if (all.ok()) {
      result.step = step;
      result.cursor = m->cursor;
      result.saved_dp = m->dp;
      result.saved_tp = m->tp;
      result.run = m->run;
      result.bytes_read = bytes_read;
      return result;
    }
    Log(LogLevel::kWarn, "checkpoint_skipped", {{"step", step}, {"why", std::string(all.message())}});
    result.skipped.push_back(fmt::format("{}: {}", StepDirName(step), std::string(all.message())));
  }
  std::string why = result.skipped.empty() ? "none found" : "skipped: " + result.skipped[0];
  for (size_t i = 1; i < result.skipped.size(); ++i) why += "; " + result.skipped[i];
  return absl::NotFoundError(fmt::format("no checkpoint in {} verifies ({})", o.dir, why));
}

}  // namespace sublet::checkpoint

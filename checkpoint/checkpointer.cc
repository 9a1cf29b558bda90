// Checkpointer: async save through reused staging buffers.
#include <sys/mman.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>

#include "checkpoint/checkpoint.h"
#include "fmt/format.h"

namespace sublet::checkpoint {
namespace {

constexpr size_t kHugePage = 2 << 20;

struct FreeDeleter {
  void operator()(std::byte* p) const { std::free(p); }
};
using Buffer = std::unique_ptr<std::byte[], FreeDeleter>;

// Page-aligned, huge-page backed where the kernel allows it, so the snapshot
// copy runs at memory bandwidth. Shards under a huge page get ordinary pages:
// a model of many small tensors would otherwise stage 2 MiB per tensor.
Buffer Allocate(uint64_t size) {
  const uint64_t align = size >= kHugePage ? kHugePage : 4096;
  const uint64_t rounded = std::max<uint64_t>((size + align - 1) / align * align, align);
  auto* p = static_cast<std::byte*>(std::aligned_alloc(align, rounded));
  if (p == nullptr) return nullptr;
  if (align == kHugePage) madvise(p, rounded, MADV_HUGEPAGE);
  std::memset(p, 0, rounded);  // fault the pages in now, not during a snapshot
  return Buffer(p);
}

struct CopyJob {
  std::byte* dst;
  const std::byte* src;
  uint64_t size;
};

// One core's memcpy does not reach memory bandwidth: the copies are cut into
// 16 MiB chunks shared by up to 8 threads.
void ParallelCopy(const std::vector<CopyJob>& jobs) {
  constexpr uint64_t kChunk = 16 << 20;
  std::vector<CopyJob> chunks;
  for (const CopyJob& j : jobs) {
    for (uint64_t off = 0; off < j.size; off += kChunk) {
      chunks.push_back({j.dst + off, j.src + off, std::min(kChunk, j.size - off)});
    }
  }
  const size_t threads = std::min<size_t>({8, std::max(1u, std::thread::hardware_concurrency()),
                                           std::max<size_t>(1, chunks.size())});
  std::atomic<size_t> next{0};
  auto work = [&] {
    for (size_t i = next++; i < chunks.size(); i = next++) {
      std::memcpy(chunks[i].dst, chunks[i].src, chunks[i].size);
    }
  };
  std::vector<std::thread> pool;
  for (size_t t = 1; t < threads; ++t) pool.emplace_back(work);
  work();
  for (std::thread& t : pool) t.join();
}

}  // namespace

struct Checkpointer::Staging {
  Cursor cursor;
  std::vector<Buffer> buffers;
  std::vector<TensorShard> shards;  // specs, pointing into buffers
};

Checkpointer::Checkpointer(FileSystem& fs, Group& group, SaveOptions options, DoneCallback on_done)
    : fs_(fs),
      group_(group),
      options_(std::move(options)),
      on_done_(std::move(on_done)),
      staging_(std::make_unique<Staging>()),
      last_result_(absl::FailedPreconditionError("no checkpoint saved yet")) {}

Checkpointer::~Checkpointer() {
  if (writer_.joinable()) writer_.join();
}

absl::StatusOr<SaveStats> Checkpointer::Wait() {
  if (writer_.joinable()) writer_.join();
  return last_result_;
}

void Checkpointer::Record(const absl::StatusOr<SaveStats>& result) {
  last_result_ = result;
  if (result.ok()) last_committed_ = result->step;
}

absl::Status Checkpointer::Snapshot(absl::Span<const TensorShard> shards) {
  const Topology& t = options_.topology;
  Staging& s = *staging_;
  bool reuse = s.shards.size() == shards.size();
  for (size_t i = 0; reuse && i < shards.size(); ++i) reuse = s.shards[i].size == shards[i].size;
  if (!reuse) {
    s.buffers.clear();
    s.shards.clear();
    for (const TensorShard& shard : shards) {
      if (shard.size != LocalBytes(shard.spec, t.tp, t.tp_rank) || ValidateSpec(shard.spec).ok() == false) {
        s.buffers.clear();
        s.shards.clear();
        return absl::InvalidArgumentError(fmt::format("tensor '{}': bad shard", shard.spec.name));
      }
      s.buffers.push_back(Allocate(shard.size));
      if (s.buffers.back() == nullptr) {
        return absl::ResourceExhaustedError("checkpoint: cannot allocate staging buffers");
      }
      s.shards.push_back({shard.spec, s.buffers.back().get(), shard.size});
    }
  }
  std::vector<CopyJob> jobs;
  for (size_t i = 0; i < shards.size(); ++i) {
    s.shards[i].spec = shards[i].spec;
    jobs.push_back({s.shards[i].data, shards[i].data, shards[i].size});
  }
  ParallelCopy(jobs);
  return absl::OkStatus();
}

absl::Status Checkpointer::SaveAsync(const Cursor& cursor, absl::Span<const TensorShard> shards) {
  Wait().IgnoreError();  // at most one in flight; its outcome went to on_done
  const auto start = std::chrono::steady_clock::now();
  SUBLET_RETURN_IF_ERROR(Snapshot(shards));
  staging_->cursor = cursor;
  const double stall =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  writer_ = std::thread([this, stall] {
    absl::StatusOr<SaveStats> result =
        SaveCheckpoint(fs_, group_, options_, staging_->cursor, staging_->shards);
    if (result.ok()) result->stall_s = stall;
    Record(result);
    if (on_done_) on_done_(result);
  });
  return absl::OkStatus();
}

absl::StatusOr<SaveStats> Checkpointer::Save(const Cursor& cursor,
                                             absl::Span<const TensorShard> shards) {
  Wait().IgnoreError();
  absl::StatusOr<SaveStats> result = SaveCheckpoint(fs_, group_, options_, cursor, shards);
  if (result.ok()) result->stall_s = result->persist_s;
  Record(result);
  return result;
}

}  // namespace sublet::checkpoint

// Checkpointer: async save through reused staging buffers, or from lent ones.
#include <chrono>

#include "checkpoint/checkpoint.h"
#include "checkpoint/internal/snapshot.h"
#include "fmt/format.h"

namespace sublet::checkpoint {

using internal::CopyJob;

struct Checkpointer::Staging {
  std::vector<internal::StagingBuffer> buffers;
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

absl::Status Checkpointer::CheckShards(absl::Span<const TensorShard> shards) const {
  const Topology& t = options_.topology;
  for (const TensorShard& shard : shards) {
    if (shard.size != LocalBytes(shard.spec, t.tp, t.tp_rank) || !ValidateSpec(shard.spec).ok()) {
      return absl::InvalidArgumentError(fmt::format("tensor '{}': bad shard", shard.spec.name));
    }
  }
  return absl::OkStatus();
}

absl::Status Checkpointer::Snapshot(absl::Span<const TensorShard> shards) {
  SUBLET_RETURN_IF_ERROR(CheckShards(shards));
  Staging& s = *staging_;
  bool reuse = s.shards.size() == shards.size();
  for (size_t i = 0; reuse && i < shards.size(); ++i) reuse = s.shards[i].size == shards[i].size;
  if (!reuse) {
    s.buffers.clear();
    s.shards.clear();
    for (const TensorShard& shard : shards) {
      s.buffers.push_back(internal::AllocateStaging(shard.size));
      if (s.buffers.back() == nullptr) {
        s.buffers.clear();
        s.shards.clear();
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
  internal::ParallelCopy(jobs);
  return absl::OkStatus();
}

void Checkpointer::StartWriter(const Cursor& cursor, std::vector<TensorShard> shards,
                               double stall) {
  writer_ = std::thread([this, cursor, shards = std::move(shards), stall] {
    absl::StatusOr<SaveStats> result = SaveCheckpoint(fs_, group_, options_, cursor, shards);
    if (result.ok()) result->stall_s = stall;
    Record(result);
    if (on_done_) on_done_(result);
  });
}

absl::Status Checkpointer::SaveAsync(const Cursor& cursor, absl::Span<const TensorShard> shards) {
  Wait().IgnoreError();  // at most one in flight; its outcome went to on_done
  const auto start = std::chrono::steady_clock::now();
  SUBLET_RETURN_IF_ERROR(Snapshot(shards));
  StartWriter(cursor, staging_->shards,
              std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  return absl::OkStatus();
}

absl::Status Checkpointer::SaveAsyncLent(const Cursor& cursor,
                                         absl::Span<const TensorShard> shards) {
  Wait().IgnoreError();
  const auto start = std::chrono::steady_clock::now();
  SUBLET_RETURN_IF_ERROR(CheckShards(shards));
  StartWriter(cursor, std::vector<TensorShard>(shards.begin(), shards.end()),
              std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
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

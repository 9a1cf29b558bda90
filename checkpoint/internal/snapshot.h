// The async save's snapshot: copying the caller's shards into staging
// buffers is the only time the training thread waits, so it runs at memory
// bandwidth on every core.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

namespace sublet::checkpoint::internal {

struct FreeDeleter {
  void operator()(std::byte* p) const;
};
using StagingBuffer = std::unique_ptr<std::byte[], FreeDeleter>;

// A buffer of at least `size` bytes (one byte when size is 0); null when
// memory is exhausted. Buffers of 2 MiB and more are 2 MiB aligned and
// advised to use huge pages; smaller ones get ordinary pages, since a model
// of many small tensors would otherwise stage 2 MiB per tensor. The pages
// are not touched: the first snapshot into the buffer faults them in, on all
// its threads at once, and later snapshots find them resident.
StagingBuffer AllocateStaging(uint64_t size);

struct CopyJob {
  std::byte* dst;
  const std::byte* src;
  uint64_t size;
};

// Copies every job, cut into 4 MiB chunks shared by one thread per core (at
// most 8). Chunks use non-temporal stores where the CPU has them: the
// staging bytes are read once, later, by the writer, so caching them would
// only add the read-for-ownership traffic to a copy bound by memory
// bandwidth and evict the caller's working set.
void ParallelCopy(const std::vector<CopyJob>& jobs);

// One chunk, as ParallelCopy copies it (exposed for tests).
void StreamCopy(std::byte* dst, const std::byte* src, uint64_t size);

}  // namespace sublet::checkpoint::internal

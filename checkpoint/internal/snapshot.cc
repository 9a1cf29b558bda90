#include "checkpoint/internal/snapshot.h"

#include <sys/mman.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <thread>

#include "common/stream_store.h"

namespace sublet::checkpoint::internal {
namespace {

constexpr uint64_t kHugePage = 2 << 20;
constexpr uint64_t kChunk = 4 << 20;
// Below this a chunk is copied with memcpy: streaming stores only pay off
// once the data would not stay in cache anyway.
constexpr uint64_t kMinStream = 256 << 10;

}  // namespace

void FreeDeleter::operator()(std::byte* p) const { std::free(p); }

StagingBuffer AllocateStaging(uint64_t size) {
  const uint64_t align = size >= kHugePage ? kHugePage : 4096;
  const uint64_t rounded = std::max<uint64_t>((size + align - 1) / align * align, align);
  auto* p = static_cast<std::byte*>(std::aligned_alloc(align, rounded));
  if (p == nullptr) return nullptr;
  if (align == kHugePage) madvise(p, rounded, MADV_HUGEPAGE);
  return StagingBuffer(p);
}

void StreamCopy(std::byte* dst, const std::byte* src, uint64_t size) {
  if (size >= kMinStream) {
    StreamStore(dst, src, size);
  } else {
    std::memcpy(dst, src, size);
  }
}

void ParallelCopy(const std::vector<CopyJob>& jobs) {
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
      StreamCopy(chunks[i].dst, chunks[i].src, chunks[i].size);
    }
  };
  std::vector<std::thread> pool;
  for (size_t t = 1; t < threads; ++t) pool.emplace_back(work);
  work();
  for (std::thread& t : pool) t.join();
}

}  // namespace sublet::checkpoint::internal

#include "checkpoint/internal/snapshot.h"

#include <sys/mman.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <thread>

#if defined(__x86_64__)
#include <emmintrin.h>
#endif

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
#if defined(__x86_64__)
  if (size >= kMinStream) {
    // Head up to 64-byte alignment of dst, then whole cache lines streamed
    // (SSE2 is in every x86-64 CPU; wider stores do not copy faster when
    // memory bandwidth is the limit), then the tail.
    const uint64_t head = (64 - reinterpret_cast<uintptr_t>(dst) % 64) % 64;
    std::memcpy(dst, src, head);
    uint64_t off = head;
    for (; off + 64 <= size; off += 64) {
      const auto* s = reinterpret_cast<const __m128i*>(src + off);
      auto* d = reinterpret_cast<__m128i*>(dst + off);
      const __m128i a = _mm_loadu_si128(s), b = _mm_loadu_si128(s + 1);
      const __m128i c = _mm_loadu_si128(s + 2), e = _mm_loadu_si128(s + 3);
      _mm_stream_si128(d, a);
      _mm_stream_si128(d + 1, b);
      _mm_stream_si128(d + 2, c);
      _mm_stream_si128(d + 3, e);
    }
    std::memcpy(dst + off, src + off, size - off);
    _mm_sfence();  // streamed stores are visible before the writer is started
    return;
  }
#endif
  std::memcpy(dst, src, size);
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

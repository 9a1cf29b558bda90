#include "common/stream_store.h"

#include <cstdint>
#include <algorithm>
#include <cstring>

#if defined(__x86_64__)
#include <emmintrin.h>
#endif

namespace sublet {

void StreamStore(void* dst_v, const void* src_v, size_t size) {
  auto* dst = static_cast<unsigned char*>(dst_v);
  const auto* src = static_cast<const unsigned char*>(src_v);
#if defined(__x86_64__)
  const size_t head = std::min<size_t>(size, (64 - reinterpret_cast<uintptr_t>(dst) % 64) % 64);
  std::memcpy(dst, src, head);
  size_t off = head;
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
  _mm_sfence();  // streamed stores are visible before anyone is told
#else
  std::memcpy(dst, src, size);
#endif
}

}  // namespace sublet

#include "collectives/internal/reduce.h"

#include <cstdint>
#include <cstring>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "collectives/internal/numeric.h"

namespace sublet::collectives::internal {
namespace {

template <typename T, typename Op>
void Loop(void* dst, const void* a, const void* b, size_t count) {
  T* d = static_cast<T*>(dst);
  const T* x = static_cast<const T*>(a);
  const T* y = static_cast<const T*>(b);
  Op op;
  for (size_t i = 0; i < count; ++i) d[i] = Combine(x[i], y[i], op);
}

template <typename T>
void ForOp(void* dst, const void* a, const void* b, size_t count, ReduceOp op) {
  switch (op) {
    case ReduceOp::kSum:
    case ReduceOp::kAvg: return Loop<T, SumOp>(dst, a, b, count);
    case ReduceOp::kMax: return Loop<T, MaxOp>(dst, a, b, count);
    case ReduceOp::kMin: return Loop<T, MinOp>(dst, a, b, count);
  }
}

template <typename T>
void Scale(void* buf, size_t count, int n) {
  T* d = static_cast<T*>(buf);
  for (size_t i = 0; i < count; ++i) d[i] = collectives::ScaleForAverage(d[i], n);
}

}  // namespace

void ReduceTo(void* dst, const void* a, const void* b, size_t count, DataType type, ReduceOp op) {
  switch (type) {
    case DataType::kF32: return ForOp<float>(dst, a, b, count, op);
    case DataType::kF64: return ForOp<double>(dst, a, b, count, op);
    case DataType::kBF16: return ForOp<Bf16>(dst, a, b, count, op);
    case DataType::kF16: return ForOp<F16>(dst, a, b, count, op);
    case DataType::kI32: return ForOp<int32_t>(dst, a, b, count, op);
    case DataType::kI64: return ForOp<int64_t>(dst, a, b, count, op);
  }
}

void ScaleForAverage(void* buf, size_t count, DataType type, int n) {
  switch (type) {
    case DataType::kF32: return Scale<float>(buf, count, n);
    case DataType::kF64: return Scale<double>(buf, count, n);
    case DataType::kBF16: return Scale<Bf16>(buf, count, n);
    case DataType::kF16: return Scale<F16>(buf, count, n);
    case DataType::kI32: return Scale<int32_t>(buf, count, n);
    case DataType::kI64: return Scale<int64_t>(buf, count, n);
  }
}

void CopyOut(void* dst, const void* src, size_t bytes, bool streaming) {
#if defined(__x86_64__)
  if (streaming && bytes >= 256) {
    char* d = static_cast<char*>(dst);
    const char* s = static_cast<const char*>(src);
    const size_t head = (64 - reinterpret_cast<uintptr_t>(d) % 64) % 64;
    std::memcpy(d, s, head);
    size_t i = head;
    for (; i + 64 <= bytes; i += 64) {  // SSE2: every x86-64 has it
      __m128i x0 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(s + i));
      __m128i x1 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(s + i + 16));
      __m128i x2 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(s + i + 32));
      __m128i x3 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(s + i + 48));
      _mm_stream_si128(reinterpret_cast<__m128i*>(d + i), x0);
      _mm_stream_si128(reinterpret_cast<__m128i*>(d + i + 16), x1);
      _mm_stream_si128(reinterpret_cast<__m128i*>(d + i + 32), x2);
      _mm_stream_si128(reinterpret_cast<__m128i*>(d + i + 48), x3);
    }
    std::memcpy(d + i, s + i, bytes - i);
    _mm_sfence();
    return;
  }
#endif
  (void)streaming;
  std::memcpy(dst, src, bytes);
}

}  // namespace sublet::collectives::internal

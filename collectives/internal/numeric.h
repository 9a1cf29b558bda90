// Element arithmetic shared by the host code and the CUDA kernels: the same
// functions compile as __host__ __device__ under nvcc, so the host tests
// exercise exactly what the kernels run. bf16 and f16 are stored as raw bits
// and reduced in float; conversions round to nearest even.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

#if defined(__CUDACC__)
#define SUBLET_HD __host__ __device__
#else
#define SUBLET_HD
#endif

namespace sublet::collectives {

struct Bf16 {
  uint16_t bits;
};
struct F16 {
  uint16_t bits;
};

SUBLET_HD inline uint32_t FloatBits(float f) {
  uint32_t u;
  memcpy(&u, &f, sizeof(u));
  return u;
}

SUBLET_HD inline float BitsFloat(uint32_t u) {
  float f;
  memcpy(&f, &u, sizeof(f));
  return f;
}

SUBLET_HD inline float Bf16ToFloat(uint16_t h) { return BitsFloat(uint32_t{h} << 16); }

SUBLET_HD inline uint16_t FloatToBf16(float f) {
  uint32_t u = FloatBits(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40u);  // quiet NaN
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}

SUBLET_HD inline float F16ToFloat(uint16_t h) {
  uint32_t sign = (uint32_t{h} & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1fu;
  uint32_t mant = h & 0x3ffu;
  if (exp == 0x1f) return BitsFloat(sign | 0x7f800000u | (mant << 13));
  if (exp == 0) {
    float v = static_cast<float>(mant) * (1.0f / 16777216.0f);  // subnormal: mant * 2^-24
    return sign ? -v : v;
  }
  return BitsFloat(sign | ((exp + 112) << 23) | (mant << 13));
}

// Round-to-nearest-even float -> half (after F. Giesen's float_to_half_fast3_rtne).
SUBLET_HD inline uint16_t FloatToF16(float f) {
  uint32_t u = FloatBits(f);
  uint32_t sign = (u >> 16) & 0x8000u;
  uint32_t a = u & 0x7fffffffu;
  uint32_t out;
  if (a >= 0x47800000u) {                      // >= 65536: inf, or NaN stays NaN
    out = a > 0x7f800000u ? 0x7e00u : 0x7c00u;
  } else if (a < 0x38800000u) {                // below 2^-14: subnormal half
    out = FloatBits(BitsFloat(a) + 0.5f) - 0x3f000000u;
  } else {
    uint32_t mant_odd = (a >> 13) & 1u;
    a += 0xc8000fffu + mant_odd;               // rebias exponent (15 - 127) and round
    out = a >> 13;
  }
  return static_cast<uint16_t>(sign | out);
}

// Arith<T>: the type arithmetic happens in, and how to get there and back.
template <typename T>
struct Arith {
  using Compute = T;
  SUBLET_HD static T Load(T x) { return x; }
  SUBLET_HD static T Store(T x) { return x; }
};
template <>
struct Arith<Bf16> {
  using Compute = float;
  SUBLET_HD static float Load(Bf16 x) { return Bf16ToFloat(x.bits); }
  SUBLET_HD static Bf16 Store(float x) { return Bf16{FloatToBf16(x)}; }
};
template <>
struct Arith<F16> {
  using Compute = float;
  SUBLET_HD static float Load(F16 x) { return F16ToFloat(x.bits); }
  SUBLET_HD static F16 Store(float x) { return F16{FloatToF16(x)}; }
};

// Binary operators. kAvg reduces with SumOp and scales once at the end.
struct SumOp {
  template <typename C>
  SUBLET_HD C operator()(C a, C b) const { return a + b; }
};
struct MaxOp {
  template <typename C>
  SUBLET_HD C operator()(C a, C b) const { return a < b ? b : a; }
};
struct MinOp {
  template <typename C>
  SUBLET_HD C operator()(C a, C b) const { return b < a ? b : a; }
};

// dst[i] = a[i] op b[i] for one element, in the compute type of T.
template <typename T, typename Op>
SUBLET_HD inline T Combine(T a, T b, Op op) {
  return Arith<T>::Store(op(Arith<T>::Load(a), Arith<T>::Load(b)));
}

// Multiplies (floating types) or divides (integer types) one element: the
// scaling step of an average over `n` ranks.
template <typename T>
SUBLET_HD inline T ScaleForAverage(T x, int n) {
  using C = typename Arith<T>::Compute;
  C v = Arith<T>::Load(x);
  if constexpr (C(1) / C(2) == C(0)) {
    return Arith<T>::Store(static_cast<C>(v / static_cast<C>(n)));
  } else {
    return Arith<T>::Store(static_cast<C>(v * (C(1) / static_cast<C>(n))));
  }
}

// Half-open element range [begin, end).
struct Range {
  size_t begin;
  size_t end;
  SUBLET_HD size_t size() const { return end - begin; }
};

// Splits `total` elements into `parts` nearly equal pieces whose boundaries
// are multiples of `align` elements (so each piece starts on a vector or cache
// line boundary); later pieces may be empty when total is small.
SUBLET_HD inline Range ChunkOf(size_t total, size_t parts, size_t i, size_t align) {
  size_t units = (total + align - 1) / align;
  size_t per = units / parts;
  size_t rem = units % parts;
  size_t first = i * per + (i < rem ? i : rem);
  size_t last = first + per + (i < rem ? 1 : 0);
  size_t begin = first * align < total ? first * align : total;
  size_t end = last * align < total ? last * align : total;
  return Range{begin, end};
}

}  // namespace sublet::collectives

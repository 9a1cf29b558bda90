// Host element-wise kernels over raw buffers, dispatched on DataType and
// ReduceOp. Compiled with -O3 so the loops vectorise; the per-element
// arithmetic is numeric.h's, shared with the CUDA kernels.
#pragma once

#include <cstddef>

#include "collectives/types.h"

namespace sublet::collectives::internal {

// dst[i] = a[i] op b[i]; dst may alias a or b. kAvg combines as a sum.
void ReduceTo(void* dst, const void* a, const void* b, size_t count, DataType type, ReduceOp op);

// dst[i] = dst[i] op src[i].
inline void ReduceInto(void* dst, const void* src, size_t count, DataType type, ReduceOp op) {
  ReduceTo(dst, dst, src, count, type, op);
}

// buf[i] = buf[i] / n (the last step of kAvg).
void ScaleForAverage(void* buf, size_t count, DataType type, int n);

// memcpy, or with `streaming` non-temporal stores: for outputs too large to
// stay in cache, they skip the read-for-ownership a cached store does and
// leave the caches to the data still being worked on, which is about a third
// less memory traffic. Stores are fenced before returning, so completion of
// a collective publishes them like ordinary stores.
void CopyOut(void* dst, const void* src, size_t bytes, bool streaming);

// Outputs of at least this many bytes are written with CopyOut(streaming).
inline constexpr size_t kStreamingBytes = size_t{8} << 20;

}  // namespace sublet::collectives::internal

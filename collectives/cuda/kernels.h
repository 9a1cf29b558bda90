// CUDA kernels next to their host twins: pack gradients into a bucket,
// unpack it, and the fused reduce-and-scale (dst = (a op b) / n) whose
// element arithmetic is numeric.h's, the same the host reduce loops use.
// All launches are asynchronous on `stream` (a cudaStream_t) and return the
// launch error, if any. Built only with the CUDA toolkit (SUBLET_HAVE_CUDA).
#pragma once

#include <cstddef>

#include "absl/status/status.h"
#include "collectives/cuda/pack_entry.h"
#include "collectives/types.h"

namespace sublet::collectives::cuda {

// Tables of PackEntry live in device memory.
// flat[offset..offset+bytes) = gradient, for each of `entries` table rows;
// `max_bytes` is the largest row (sizes the grid).
absl::Status Pack(const PackEntry* table, int entries, size_t max_bytes, void* flat, void* stream);
absl::Status Unpack(const PackEntry* table, int entries, size_t max_bytes, const void* flat,
                    void* stream);
// dst[i] = (a[i] op b[i]), then divided by `average_over` when > 1.
absl::Status ReduceAndScale(void* dst, const void* a, const void* b, size_t count, DataType type,
                            ReduceOp op, int average_over, void* stream);

}  // namespace sublet::collectives::cuda

// Planning shared by the host overlap blocks and their CUDA twins: which
// gradients go into which bucket, and how a GEMM is cut into chunks. Pure
// functions, so the host tests check exactly what the CUDA twins use.
#pragma once

#include <cstddef>
#include <vector>

namespace sublet::collectives::overlap {

struct BucketPlan {
  std::vector<std::vector<size_t>> buckets;  // gradient indices, in registration order
  std::vector<size_t> bucket_of;             // gradient index -> bucket
  std::vector<size_t> offset_of;             // gradient index -> element offset in its bucket
  std::vector<size_t> bucket_elems;
};

// Greedy in registration order (the order gradients become ready in the
// backward pass): the first bucket closes once it reaches `first_bytes`, the
// others at `bucket_bytes`; a gradient larger than a bucket gets its own.
BucketPlan PlanBuckets(const std::vector<size_t>& elems, size_t elem_bytes, size_t first_bytes,
                       size_t bucket_bytes);

}  // namespace sublet::collectives::overlap

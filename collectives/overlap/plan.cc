#include "collectives/overlap/plan.h"

namespace sublet::collectives::overlap {

BucketPlan PlanBuckets(const std::vector<size_t>& elems, size_t elem_bytes, size_t first_bytes,
                       size_t bucket_bytes) {
  BucketPlan plan;
  plan.bucket_of.resize(elems.size());
  plan.offset_of.resize(elems.size());
  size_t filled = 0;  // bytes in the open bucket
  for (size_t i = 0; i < elems.size(); ++i) {
    const size_t limit = plan.buckets.size() <= 1 ? first_bytes : bucket_bytes;
    if (plan.buckets.empty() || (filled > 0 && filled + elems[i] * elem_bytes > limit)) {
      plan.buckets.emplace_back();
      plan.bucket_elems.push_back(0);
      filled = 0;
    }
    const size_t b = plan.buckets.size() - 1;
    plan.buckets[b].push_back(i);
    plan.bucket_of[i] = b;
    plan.offset_of[i] = plan.bucket_elems[b];
    plan.bucket_elems[b] += elems[i];
    filled += elems[i] * elem_bytes;
  }
  return plan;
}

}  // namespace sublet::collectives::overlap

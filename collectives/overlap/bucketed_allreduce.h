// Bucketed all-reduce for data parallelism: gradients are registered in the
// order the backward pass produces them; as each becomes ready the caller
// calls MarkReady, and as soon as every gradient of a bucket is ready the
// bucket is packed into one flat buffer (a bucket of one gradient is reduced
// in place) and its all-reduce starts (async),
// while the backward pass goes on computing the rest. Finish waits for all
// buckets and unpacks the reduced values into the gradients.
//
// Buckets launch strictly in bucket order (a full bucket waits for the
// earlier ones to launch), so every rank issues the same collectives in the
// same order even when gradients become ready in a different order.
// Not thread-safe: call from the thread running the backward pass.
#pragma once

#include <cstddef>
#include <functional>
#include <vector>

#include "absl/status/status.h"
#include "collectives/communicator.h"
#include "collectives/overlap/plan.h"

namespace sublet::collectives::overlap {

struct BucketedAllReduceOptions {
  size_t bucket_bytes = size_t{25} << 20;      // like PyTorch DDP's bucket_cap_mb
  size_t first_bucket_bytes = size_t{1} << 20;  // small, so communication starts early
  DataType type = DataType::kF32;
  ReduceOp op = ReduceOp::kAvg;
};

class BucketedAllReduce {
 public:
  struct Gradient {
    void* data;
    size_t count;  // elements of options.type
  };
  BucketedAllReduce(Communicator& comm, std::vector<Gradient> gradients,
                    BucketedAllReduceOptions options = {});

  // Gradient `index` holds its final local value. InvalidArgument if out of
  // range or marked twice in one step. From here until Finish returns the
  // gradient's memory belongs to the all-reduce (a one-gradient bucket is
  // reduced where it lies): do not write or read it; after a failed Finish
  // its contents are undefined.
  absl::Status MarkReady(size_t index);
  // Waits for every bucket (all gradients must have been marked), unpacks,
  // and re-arms for the next step. `on_reduced(index)`, when given, runs for
  // each gradient as soon as its bucket is reduced (in bucket order, on the
  // calling thread), so per-gradient work such as a norm overlaps the
  // buckets still in flight; it stops being called after a failed bucket.
  absl::Status Finish(const std::function<void(size_t)>& on_reduced = nullptr);

  const BucketPlan& plan() const { return plan_; }

 private:
  void LaunchReadyBuckets();
  bool InPlace(size_t bucket) const { return in_place_[bucket]; }

  Communicator& comm_;
  std::vector<Gradient> gradients_;
  BucketedAllReduceOptions options_;
  BucketPlan plan_;
  std::vector<std::vector<char>> flat_;  // one buffer per bucket (empty when in place)
  std::vector<bool> in_place_;
  std::vector<size_t> pending_;          // per bucket: gradients not yet ready
  std::vector<bool> ready_;
  std::vector<WorkPtr> work_;
  size_t next_launch_ = 0;
};

}  // namespace sublet::collectives::overlap

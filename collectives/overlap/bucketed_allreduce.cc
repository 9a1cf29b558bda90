#include "collectives/overlap/bucketed_allreduce.h"

#include <cstring>

#include "absl/strings/str_cat.h"
#include "common/status.h"

namespace sublet::collectives::overlap {

namespace {
std::vector<size_t> Counts(const std::vector<BucketedAllReduce::Gradient>& g) {
  std::vector<size_t> out;
  for (const auto& x : g) out.push_back(x.count);
  return out;
}
}  // namespace

BucketedAllReduce::BucketedAllReduce(Communicator& comm, std::vector<Gradient> gradients,
                                     BucketedAllReduceOptions options)
    : comm_(comm), gradients_(std::move(gradients)), options_(options),
      plan_(PlanBuckets(Counts(gradients_), DataTypeSize(options.type),
                        options.first_bucket_bytes, options.bucket_bytes)) {
  for (size_t b = 0; b < plan_.buckets.size(); ++b) {
    // A bucket of one gradient is all-reduced where it lies: no pack, no unpack.
    const bool in_place = plan_.buckets[b].size() == 1;
    in_place_.push_back(in_place);
    flat_.emplace_back(in_place ? 0 : plan_.bucket_elems[b] * DataTypeSize(options_.type));
    pending_.push_back(plan_.buckets[b].size());
  }
  ready_.assign(gradients_.size(), false);
  work_.resize(plan_.buckets.size());
}

absl::Status BucketedAllReduce::MarkReady(size_t index) {
  if (index >= gradients_.size() || ready_[index]) {
    return absl::InvalidArgumentError(
        absl::StrCat("bucketed allreduce: gradient ", index, " is unknown or already ready"));
  }
  ready_[index] = true;
  const size_t b = plan_.bucket_of[index];
  if (!InPlace(b)) {
    const size_t esz = DataTypeSize(options_.type);
    std::memcpy(flat_[b].data() + plan_.offset_of[index] * esz, gradients_[index].data,
                gradients_[index].count * esz);  // pack
  }
  if (--pending_[b] == 0) LaunchReadyBuckets();
  return absl::OkStatus();
}

void BucketedAllReduce::LaunchReadyBuckets() {
  while (next_launch_ < plan_.buckets.size() && pending_[next_launch_] == 0) {
    void* data = InPlace(next_launch_) ? gradients_[plan_.buckets[next_launch_][0]].data
                                       : flat_[next_launch_].data();
    work_[next_launch_] = comm_.AllReduceAsync(data, data, plan_.bucket_elems[next_launch_],
                                               options_.type, options_.op);
    ++next_launch_;
  }
}

absl::Status BucketedAllReduce::Finish(const std::function<void(size_t)>& on_reduced) {
  if (next_launch_ != plan_.buckets.size()) {
    return absl::FailedPreconditionError("bucketed allreduce: Finish before every gradient was ready");
  }
  absl::Status first_error;
  const size_t esz = DataTypeSize(options_.type);
  for (size_t b = 0; b < plan_.buckets.size(); ++b) {
    absl::Status s = work_[b]->Wait();
    if (!s.ok() && first_error.ok()) first_error = s;
    if (!s.ok()) continue;
    for (size_t i : plan_.buckets[b]) {
      if (!InPlace(b)) {  // unpack
        std::memcpy(gradients_[i].data, flat_[b].data() + plan_.offset_of[i] * esz,
                    gradients_[i].count * esz);
      }
      if (on_reduced && first_error.ok()) on_reduced(i);
    }
  }
  for (size_t b = 0; b < plan_.buckets.size(); ++b) pending_[b] = plan_.buckets[b].size();
  ready_.assign(gradients_.size(), false);
  next_launch_ = 0;
  return first_error;
}

}  // namespace sublet::collectives::overlap

#include "checkpoint/group.h"

namespace sublet::checkpoint {

class InProcessGroups::MemberGroup final : public Group {
 public:
  MemberGroup(InProcessGroups* groups, int rank) : groups_(groups), rank_(rank) {}
  int rank() const override { return rank_; }
  int size() const override { return groups_->size_; }
  absl::StatusOr<std::vector<std::string>> AllGather(const std::string& mine) override {
    return groups_->Gather(rank_, mine);
  }

 private:
  InProcessGroups* groups_;
  int rank_;
};

InProcessGroups::InProcessGroups(int size) : size_(size), slots_(size) {
  for (int r = 0; r < size; ++r) members_.push_back(std::make_unique<MemberGroup>(this, r));
}

// A generation-counted barrier: the last rank to arrive publishes the slots
// and wakes the others, who copy the result of their generation.
absl::StatusOr<std::vector<std::string>> InProcessGroups::Gather(int rank,
                                                                 const std::string& mine) {
  std::unique_lock<std::mutex> lock(mutex_);
  const uint64_t my_generation = generation_;
  slots_[rank] = mine;
  if (++arrived_ == size_) {
    result_ = std::move(slots_);
    slots_.assign(size_, {});
    arrived_ = 0;
    ++generation_;
    changed_.notify_all();
    return result_;
  }
  changed_.wait(lock, [&] { return generation_ != my_generation; });
  return result_;
}

}  // namespace sublet::checkpoint

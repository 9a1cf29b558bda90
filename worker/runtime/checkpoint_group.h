// checkpoint::Group over a collectives communicator: the checkpoint
// library's byte-string all-gather as two all-gathers (the lengths, then
// every rank's bytes padded to the longest). Give it a communicator of its
// own (ProcessGroups::ckpt): an async save runs it from the writer thread
// while the training thread issues its own collectives.
#pragma once

#include <string>
#include <vector>

#include "checkpoint/group.h"
#include "collectives/communicator.h"

namespace sublet::worker {

class CommunicatorGroup final : public checkpoint::Group {
 public:
  explicit CommunicatorGroup(collectives::Communicator& comm) : comm_(comm) {}
  int rank() const override { return comm_.rank(); }
  int size() const override { return comm_.size(); }
  absl::StatusOr<std::vector<std::string>> AllGather(const std::string& mine) override;

 private:
  collectives::Communicator& comm_;
};

}  // namespace sublet::worker

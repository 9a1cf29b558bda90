// The communicators of one data x tensor parallel rank.
//
// World rank = dp_rank * tp + tp_rank (the checkpoint library's order), so a
// tensor group is tp consecutive world ranks, which the launcher places on
// one node. Four communicators, each with its own executor so they never
// wait on one another's queue:
//   world  step-boundary agreements (preemption flag, loss)
//   tp     the tensor group (collective matmuls, replicated gradients)
//   dp     the data group (bucketed gradient all-reduce)
//   ckpt   the whole world again, for the checkpoint writer thread
// Rank and size come from the service environment or from mpirun
// (collectives/bootstrap.h); with neither, the process is a world of one.
#pragma once

#include <memory>

#include "absl/status/statusor.h"
#include "collectives/bootstrap.h"
#include "collectives/communicator.h"

namespace sublet::worker {

struct ProcessGroups {
  std::unique_ptr<collectives::Communicator> world, tp, dp, ckpt;
  int tp_size = 1, dp_size = 1, tp_rank = 0, dp_rank = 0;
  int rank() const { return world->rank(); }
  int size() const { return world->size(); }
};

// InvalidArgument naming --tp when tp does not divide the world size.
absl::StatusOr<ProcessGroups> CreateProcessGroups(const collectives::GetenvFn& getenv, int tp,
                                                  const collectives::CommunicatorOptions& options);

}  // namespace sublet::worker

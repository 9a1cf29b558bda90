// Who writes which bytes: computed identically on every rank from the specs
// and the topology, so the ranks exchange only checksums.
#pragma once

#include <cstdint>
#include <vector>

#include "checkpoint/manifest.h"

namespace sublet::checkpoint::internal {

struct PlannedPiece {
  uint32_t tensor = 0;
  uint32_t tp_shard = 0;
  uint64_t shard_offset = 0;
  uint64_t length = 0;
  int writer = 0;            // world rank
  uint64_t file_offset = 0;  // within the writer's shard file
};

// Every non-empty shard of every tensor, cut among the ranks that hold it:
// a split tensor's shard t is held by the dp ranks with tp_rank t, a
// replicated tensor by all ranks. Shards under `min_split_bytes` go whole to
// one holder (round robin); larger ones are cut into equal element ranges.
// Pieces are in tensor order, and in file order for each writer.
std::vector<PlannedPiece> PlanPieces(const std::vector<TensorSpec>& specs, int dp, int tp,
                                     uint64_t min_split_bytes);

}  // namespace sublet::checkpoint::internal

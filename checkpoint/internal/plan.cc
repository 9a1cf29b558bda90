#include "checkpoint/internal/plan.h"

namespace sublet::checkpoint::internal {

std::vector<PlannedPiece> PlanPieces(const std::vector<TensorSpec>& specs, int dp, int tp,
                                     uint64_t min_split_bytes) {
  std::vector<PlannedPiece> plan;
  std::vector<uint64_t> file_end(static_cast<size_t>(dp) * tp, 0);
  uint64_t round_robin = 0;
  for (uint32_t i = 0; i < specs.size(); ++i) {
    const TensorSpec& spec = specs[i];
    const size_t esize = DTypeSize(spec.dtype);
    const bool split = spec.split_dim >= 0;
    for (int s = 0; s < NumShards(spec, tp); ++s) {
      const uint64_t bytes = LocalBytes(spec, tp, s);
      if (bytes == 0) continue;
      // Holder j of this shard, as a world rank.
      const int holders = split ? dp : dp * tp;
      auto holder = [&](uint64_t j) { return split ? static_cast<int>(j) * tp + s : static_cast<int>(j); };
      auto add = [&](uint64_t offset, uint64_t length, int writer) {
        plan.push_back({i, static_cast<uint32_t>(s), offset, length, writer, file_end[writer]});
        file_end[writer] += length;
      };
      if (bytes < min_split_bytes || holders == 1) {
        add(0, bytes, holder(round_robin++ % holders));
        continue;
      }
      const uint64_t elements = bytes / esize;
      for (int j = 0; j < holders; ++j) {
        using U = unsigned __int128;
        const uint64_t begin = static_cast<uint64_t>(U(elements) * j / holders) * esize;
        const uint64_t end = static_cast<uint64_t>(U(elements) * (j + 1) / holders) * esize;
        if (end > begin) add(begin, end - begin, holder(j));
      }
    }
  }
  return plan;
}

}  // namespace sublet::checkpoint::internal

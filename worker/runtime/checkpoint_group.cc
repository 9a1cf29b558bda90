#include "worker/runtime/checkpoint_group.h"

#include <algorithm>
#include <cstring>

#include "common/status.h"

namespace sublet::worker {

absl::StatusOr<std::vector<std::string>> CommunicatorGroup::AllGather(const std::string& mine) {
  using collectives::DataType;
  const int n = comm_.size();
  const int64_t my_size = static_cast<int64_t>(mine.size());
  std::vector<int64_t> sizes(n);
  SUBLET_RETURN_IF_ERROR(comm_.AllGather(&my_size, sizes.data(), 1, DataType::kI64));
  const int64_t longest = *std::max_element(sizes.begin(), sizes.end());
  // Whole 4-byte words, at least one: the transport moves elements.
  const size_t words = static_cast<size_t>(std::max<int64_t>(1, (longest + 3) / 4));
  std::vector<int32_t> padded(words, 0), all(words * n);
  std::memcpy(padded.data(), mine.data(), mine.size());
  SUBLET_RETURN_IF_ERROR(comm_.AllGather(padded.data(), all.data(), words, DataType::kI32));
  std::vector<std::string> out(n);
  for (int r = 0; r < n; ++r) {
    if (sizes[r] < 0 || sizes[r] > longest) {
      return absl::InternalError("checkpoint group: peer sent a bad length");
    }
    const char* base = reinterpret_cast<const char*>(all.data() + words * r);
    out[r].assign(base, static_cast<size_t>(sizes[r]));
  }
  return out;
}

}  // namespace sublet::worker

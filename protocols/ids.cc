#include "protocols/ids.h"

#include <fmt/format.h>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"

namespace sublet::protocols {

absl::StatusOr<uint64_t> ParseId(std::string_view kind, std::string_view text) {
  // SimpleAtoi alone would accept surrounding spaces and a leading '+'.
  bool digits = !text.empty();
  for (char c : text) digits = digits && absl::ascii_isdigit(static_cast<unsigned char>(c));
  uint64_t id = 0;
  if (!digits || !absl::SimpleAtoi(absl::string_view(text.data(), text.size()), &id) || id == 0) {
    return absl::InvalidArgumentError(
        fmt::format("invalid {} id '{}': expected a positive integer", kind, text));
  }
  return id;
}

}  // namespace sublet::protocols

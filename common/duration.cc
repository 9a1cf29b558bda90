#include "common/duration.h"

#include <cctype>

#include "absl/strings/str_cat.h"

namespace sublet {

absl::StatusOr<absl::Duration> ParseDuration(std::string_view text) {
  if (text.empty()) return absl::InvalidArgumentError("empty duration");
  // absl has no day unit; "Nd" is common in schedulers (Slurm accepts days).
  std::string normalized(text);
  const std::string quoted = "\"" + std::string(text) + "\"";
  if (normalized.size() > 1 && normalized.back() == 'd' &&
      std::isdigit(static_cast<unsigned char>(normalized[normalized.size() - 2]))) {
    std::string digits = normalized.substr(0, normalized.size() - 1);
    for (char c : digits) {
      if (!std::isdigit(static_cast<unsigned char>(c))) {
        return absl::InvalidArgumentError(absl::StrCat("malformed duration ", quoted));
      }
    }
    if (digits.size() > 6) return absl::InvalidArgumentError(absl::StrCat("duration ", quoted, " is too long"));
    normalized = absl::StrCat(std::stoll(digits) * 24, "h");
  }
  absl::Duration d;
  if (!absl::ParseDuration(normalized, &d) || d == absl::InfiniteDuration()) {
    return absl::InvalidArgumentError(
        absl::StrCat("malformed duration ", quoted, " (expected e.g. 90s, 30m, 2h, 1h30m)"));
  }
  if (d <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError(absl::StrCat("duration ", quoted, " must be positive"));
  }
  return d;
}

std::string FormatDuration(absl::Duration d) { return absl::FormatDuration(d); }

}  // namespace sublet

// Small helpers for job spec error messages. Private to protocols/.
#pragma once

#include <string>
#include <string_view>

#include "absl/strings/escaping.h"
#include "common/status.h"

namespace sublet::protocols::internal {

// Text taken from a spec, made safe to echo in an error: control and
// non-ASCII bytes escaped, cut after 64 bytes ("..." marks the cut).
inline std::string Escape(std::string_view text) {
  constexpr size_t kMaxEcho = 64;
  std::string head(text.substr(0, kMaxEcho));
  return absl::CHexEscape(head) + (text.size() > kMaxEcho ? "..." : "");
}

// A value from a spec, escaped and in double quotes.
inline std::string Quote(std::string_view text) {
  constexpr size_t kMaxEcho = 64;
  std::string head(text.substr(0, kMaxEcho));
  return "\"" + absl::CHexEscape(head) + "\"" + (text.size() > kMaxEcho ? "..." : "");
}

// InvalidArgument("<path>: <what>"), the form of every job spec error.
inline absl::Status FieldError(std::string_view path, std::string_view what) {
  return absl::InvalidArgumentError(std::string(path) + ": " + std::string(what));
}

}  // namespace sublet::protocols::internal

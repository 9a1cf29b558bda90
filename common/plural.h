// Counted nouns in text people read: Plural(1, "node") is "1 node",
// Plural(2, "GPU") is "2 GPUs", Plural(0, "entry", "entries") is "0 entries".
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace sublet {

// `plural` defaults to `noun` + "s".
inline std::string Plural(uint64_t n, std::string_view noun, std::string_view plural = {}) {
  std::string out = std::to_string(n) + " ";
  if (n == 1) return out.append(noun);
  if (!plural.empty()) return out.append(plural);
  return out.append(noun).append("s");
}

}  // namespace sublet

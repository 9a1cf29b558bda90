#include "worker/train/data.h"

#include <fstream>
#include <iterator>
#include <vector>

#include "absl/strings/str_cat.h"

namespace sublet::train {
namespace {

class Synthetic final : public DataSource {
 public:
  Synthetic(uint64_t seed, int64_t vocab) : seed_(seed), vocab_(vocab) {}
  void Sequence(uint64_t index, std::span<int32_t> out) const override {
    const uint64_t h = Mix(seed_, index);
    const uint64_t v = static_cast<uint64_t>(vocab_);
    const uint64_t start = h % v;
    const uint64_t stride = 1 + (h >> 32) % 7;
    for (size_t t = 0; t < out.size(); ++t) {
      out[t] = static_cast<int32_t>((start + stride * t) % v);
    }
  }

 private:
  uint64_t seed_;
  int64_t vocab_;
};

class Text final : public DataSource {
 public:
  Text(std::string bytes, uint64_t seed) : bytes_(std::move(bytes)), seed_(seed) {}
  void Sequence(uint64_t index, std::span<int32_t> out) const override {
    const uint64_t span = bytes_.size() - out.size() + 1;
    const uint64_t start = Mix(seed_, index) % span;
    for (size_t t = 0; t < out.size(); ++t) {
      out[t] = static_cast<unsigned char>(bytes_[start + t]);
    }
  }

 private:
  std::string bytes_;
  uint64_t seed_;
};

}  // namespace

uint64_t Mix(uint64_t seed, uint64_t index) {
  uint64_t z = seed * 0x9e3779b97f4a7c15ull + index + 0x632be59bd9b4e019ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

std::unique_ptr<DataSource> SyntheticData(uint64_t seed, int64_t vocab) {
  return std::make_unique<Synthetic>(seed, vocab);
}

absl::StatusOr<std::unique_ptr<DataSource>> TextData(const std::string& path, uint64_t seed,
                                                     int64_t vocab, int64_t min_bytes) {
  if (vocab < 256) {
    return absl::InvalidArgumentError("--data: byte-level text needs a vocabulary of 256");
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::InvalidArgumentError(absl::StrCat("--data: cannot read ", path));
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (static_cast<int64_t>(bytes.size()) < min_bytes) {
    return absl::InvalidArgumentError(absl::StrCat("--data: ", path, " has ", bytes.size(),
                                                   " bytes; need at least ", min_bytes));
  }
  return std::make_unique<Text>(std::move(bytes), seed);
}

}  // namespace sublet::train

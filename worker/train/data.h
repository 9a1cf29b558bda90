// Training data as an indexed stream of sequences: sequence i of a run is a
// pure function of (source, seed, i), so a run resumes at any position and
// every topology sees the same global batches. Step s consumes sequences
// [s * global_batch, (s + 1) * global_batch); data rank d takes its
// contiguous share of them.
//
// Each sequence has seq + 1 tokens: the model reads the first seq and
// predicts the last seq.
//   synthetic: arithmetic progressions modulo the vocabulary, start and
//              stride drawn per sequence (stride 1..7), so the model must
//              infer the stride from context; loss falls quickly.
//   text:      byte-level tokens (vocabulary 256) of a file, each sequence
//              starting at a pseudo-random offset.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "absl/status/statusor.h"

namespace sublet::train {

class DataSource {
 public:
  virtual ~DataSource() = default;
  // Fills out (seq + 1 tokens) with sequence `index`.
  virtual void Sequence(uint64_t index, std::span<int32_t> out) const = 0;
};

std::unique_ptr<DataSource> SyntheticData(uint64_t seed, int64_t vocab);

// Reads the whole file; InvalidArgument naming --data when it cannot be read,
// is shorter than min_bytes (seq + 2), or the vocabulary is below 256.
absl::StatusOr<std::unique_ptr<DataSource>> TextData(const std::string& path, uint64_t seed,
                                                     int64_t vocab, int64_t min_bytes);

// A well-mixed 64-bit hash of (seed, index) (splitmix64).
uint64_t Mix(uint64_t seed, uint64_t index);

}  // namespace sublet::train

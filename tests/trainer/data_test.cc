#include "worker/train/data.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <vector>

namespace sublet::train {
namespace {

std::vector<int32_t> Seq(const DataSource& d, uint64_t i, size_t n = 9) {
  std::vector<int32_t> out(n);
  d.Sequence(i, out);
  return out;
}

TEST(SyntheticData, SequenceDependsOnlyOnSeedAndIndex) {
  auto a = SyntheticData(5, 256), b = SyntheticData(5, 256), c = SyntheticData(6, 256);
  EXPECT_EQ(Seq(*a, 42), Seq(*b, 42));
  EXPECT_NE(Seq(*a, 42), Seq(*a, 43));
  EXPECT_NE(Seq(*a, 42), Seq(*c, 42));
  for (int32_t t : Seq(*a, 7, 600)) EXPECT_TRUE(t >= 0 && t < 256);
}

TEST(TextData, TokensAreTheFilesBytes) {
  const std::string path = ::testing::TempDir() + "/text.txt";
  std::ofstream(path) << "abcdefghij";
  auto d = TextData(path, 1, 256, 4);
  ASSERT_TRUE(d.ok()) << d.status();
  auto s = Seq(**d, 3, 4);
  for (size_t i = 1; i < s.size(); ++i) EXPECT_EQ(s[i], s[i - 1] + 1);
  EXPECT_GE(s[0], 'a');
  EXPECT_LE(s[3], 'j');
}

TEST(TextData, RejectsMissingAndTooShortFilesNamingTheFlag) {
  auto missing = TextData("/nonexistent/file", 1, 256, 4);
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(missing.status().message().find("--data"), absl::string_view::npos);
  const std::string path = ::testing::TempDir() + "/short.txt";
  std::ofstream(path) << "ab";
  EXPECT_EQ(TextData(path, 1, 256, 4).status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace sublet::train

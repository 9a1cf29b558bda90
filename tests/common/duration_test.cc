#include "common/duration.h"

#include <gtest/gtest.h>

namespace sublet {
namespace {

TEST(ParseDurationTest, AcceptsCommonUnits) {
  EXPECT_EQ(*ParseDuration("90s"), absl::Seconds(90));
  EXPECT_EQ(*ParseDuration("2h"), absl::Hours(2));
  EXPECT_EQ(*ParseDuration("1h30m"), absl::Minutes(90));
  EXPECT_EQ(*ParseDuration("500ms"), absl::Milliseconds(500));
  EXPECT_EQ(*ParseDuration("2d"), absl::Hours(48));
}

TEST(ParseDurationTest, RejectsMalformedText) {
  for (const char* bad : {"", "10", "abc", "1x", "d", "1.5.2s", "ten seconds", "-5s", "0s", "xd"}) {
    auto d = ParseDuration(bad);
    EXPECT_FALSE(d.ok()) << bad;
    EXPECT_EQ(d.status().code(), absl::StatusCode::kInvalidArgument) << bad;
  }
}

TEST(ParseDurationTest, ErrorQuotesTheText) {
  auto d = ParseDuration("forever");
  ASSERT_FALSE(d.ok());
  EXPECT_NE(d.status().message().find("\"forever\""), std::string::npos);
}

}  // namespace
}  // namespace sublet

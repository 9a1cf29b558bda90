// Job and reclaim ids as text: what `sublet show 7` and SUBLET_JOB_ID accept.
#include "protocols/ids.h"

#include <gtest/gtest.h>

#include <string>

namespace sublet::protocols {
namespace {

TEST(ParseIdTest, AcceptsPositiveDecimalIds) {
  EXPECT_EQ(ParseId("job", "7").value(), 7u);
  EXPECT_EQ(ParseId("job", "18446744073709551615").value(), ~uint64_t{0});
  EXPECT_EQ(ParseId("reclaim", "9223372036854775813").value(), (uint64_t{1} << 63) + 5);
}

TEST(ParseIdTest, RefusesZeroSignsSpacesAndOtherText) {
  for (const char* text :
       {"", "0", "-1", "+7", " 7", "7 ", "12x", "abc", "0x10", "7.0", "18446744073709551616"}) {
    SCOPED_TRACE(text);
    absl::StatusOr<uint64_t> id = ParseId("job", text);
    ASSERT_FALSE(id.ok());
    EXPECT_EQ(id.status().code(), absl::StatusCode::kInvalidArgument);
  }
}

TEST(ParseIdTest, ErrorNamesTheKindAndTheText) {
  EXPECT_EQ(ParseId("job", "abc").status().message(),
            "invalid job id 'abc': expected a positive integer");
  EXPECT_EQ(ParseId("reclaim", "0").status().message(),
            "invalid reclaim id '0': expected a positive integer");
}

}  // namespace
}  // namespace sublet::protocols

#include "common/plural.h"

#include <gtest/gtest.h>

namespace sublet {
namespace {

TEST(PluralTest, OneIsSingularEverythingElsePlural) {
  EXPECT_EQ(Plural(1, "node"), "1 node");
  EXPECT_EQ(Plural(2, "node"), "2 nodes");
  EXPECT_EQ(Plural(0, "GPU"), "0 GPUs");
}

TEST(PluralTest, TakesAnIrregularPlural) {
  EXPECT_EQ(Plural(1, "entry", "entries"), "1 entry");
  EXPECT_EQ(Plural(3, "entry", "entries"), "3 entries");
}

}  // namespace
}  // namespace sublet

// Skips that must not hide a broken machine. scripts/test (and so CI) sets
// SUBLET_TEST_STRICT=1: the machine kind it runs on has network namespaces,
// cgroups and root, so there a missing facility is a failure, not a skip.
// Run by hand elsewhere (a laptop without root), the same tests skip.
#pragma once

#include <cstdlib>
#include <cstring>

#include <gtest/gtest.h>

namespace sublet::testing {

inline bool StrictSkips() {
  const char* strict = std::getenv("SUBLET_TEST_STRICT");
  return strict != nullptr && std::strcmp(strict, "1") == 0;
}

}  // namespace sublet::testing

// Use like GTEST_SKIP(): SUBLET_SKIP_UNLESS_STRICT() << "why"; one statement
// (gtest's own skip and fatal failure, chosen at run time).
#define SUBLET_SKIP_UNLESS_STRICT()                                                    \
  return GTEST_MESSAGE_(::sublet::testing::StrictSkips()                              \
                            ? "Failed: SUBLET_TEST_STRICT=1 (scripts/test), so this must " \
                              "work on this machine"                                 \
                            : "Skipped",                                             \
                        ::sublet::testing::StrictSkips()                              \
                            ? ::testing::TestPartResult::kFatalFailure                \
                            : ::testing::TestPartResult::kSkip)

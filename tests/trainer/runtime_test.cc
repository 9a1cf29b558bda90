// The rank runtime's small pieces: the preemption notice and the checkpoint
// group over a communicator.
#include <gtest/gtest.h>

#include <csignal>

#include "tests/collectives/rank_threads.h"
#include "worker/runtime/checkpoint_group.h"
#include "worker/runtime/preemption_notice.h"

namespace sublet::worker {
namespace {

TEST(PreemptionNotice, RequestSetsTheFlagForGood) {
  PreemptionNotice notice;
  EXPECT_FALSE(notice.Requested());
  notice.Request();
  notice.Request();
  EXPECT_TRUE(notice.Requested());
}

TEST(PreemptionNotice, Sigusr1AndSigtermAreNotices) {
  for (int sig : {SIGUSR1, SIGTERM}) {
    PreemptionNotice notice;
    ASSERT_TRUE(notice.InstallSignalHandlers().ok());
    std::raise(sig);  // delivered before raise returns (single thread)
    EXPECT_TRUE(notice.Requested()) << sig;
  }
}

TEST(PreemptionNotice, OnlyOneNoticeOwnsTheSignals) {
  PreemptionNotice first, second;
  ASSERT_TRUE(first.InstallSignalHandlers().ok());
  EXPECT_EQ(second.InstallSignalHandlers().code(), absl::StatusCode::kFailedPrecondition);
  std::raise(SIGUSR1);
  EXPECT_TRUE(first.Requested());
  EXPECT_FALSE(second.Requested());
}

TEST(CommunicatorGroup, AllGathersStringsOfDifferentLengthsInRankOrder) {
  using collectives::testing::Layout;
  collectives::testing::RunRanks(3, Layout::kOneNode, collectives::testing::TestOptions(),
                                 [](collectives::Communicator& c) {
    CommunicatorGroup group(c);
    const std::string mine = std::string(static_cast<size_t>(c.rank() * 5), 'a' + c.rank());
    auto all = group.AllGather(mine);
    ASSERT_TRUE(all.ok()) << all.status();
    ASSERT_EQ(all->size(), 3u);
    EXPECT_EQ((*all)[0], "");
    EXPECT_EQ((*all)[1], "bbbbb");
    EXPECT_EQ((*all)[2], "cccccccccc");
  });
}

}  // namespace
}  // namespace sublet::worker

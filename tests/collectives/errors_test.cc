// Error paths: a peer that never arrives (rendezvous and operations, over
// shared memory and TCP), a poisoned communicator, bad arguments.
#include <gtest/gtest.h>

#include <future>
#include <latch>

#include "tests/collectives/rank_threads.h"

namespace sublet::collectives::testing {
namespace {

CommunicatorOptions ShortTimeout() {
  CommunicatorOptions o = TestOptions();
  o.timeout = absl::Milliseconds(300);
  return o;
}

class PeerNeverArrives : public ::testing::TestWithParam<Layout> {};

// Rank 1 joins the group but never calls the allreduce; rank 0 must fail with
// DeadlineExceeded naming the operation and rank 1, then refuse further work.
TEST_P(PeerNeverArrives, AllReduceTimesOutNamingOpAndPeer) {
  std::latch rank0_done(1);
  RunRanks(2, GetParam(), ShortTimeout(), [&](Communicator& c) {
    if (c.rank() == 1) {
      rank0_done.wait();
      return;
    }
    float x = 1;
    absl::Status s = c.AllReduce(&x, &x, 1, DataType::kF32, ReduceOp::kSum);
    EXPECT_TRUE(absl::IsDeadlineExceeded(s)) << s;
    EXPECT_NE(s.message().find("allreduce"), std::string::npos) << s;
    EXPECT_NE(s.message().find("rank 1"), std::string::npos) << s;
    absl::Status after = c.Barrier();
    EXPECT_TRUE(absl::IsFailedPrecondition(after)) << after;
    rank0_done.count_down();
  });
}

TEST_P(PeerNeverArrives, AsyncWorkReportsTheSameDeadline) {
  std::latch rank0_done(1);
  RunRanks(2, GetParam(), ShortTimeout(), [&](Communicator& c) {
    if (c.rank() == 1) {
      rank0_done.wait();
      return;
    }
    std::vector<float> v(1000, 1.0f);
    WorkPtr w = c.AllReduceAsync(v.data(), v.data(), v.size(), DataType::kF32, ReduceOp::kSum);
    absl::Status s = w->Wait();
    EXPECT_TRUE(w->Test());
    EXPECT_TRUE(absl::IsDeadlineExceeded(s)) << s;
    EXPECT_NE(s.message().find("rank 1"), std::string::npos) << s;
    rank0_done.count_down();
  });
}

INSTANTIATE_TEST_SUITE_P(Layouts, PeerNeverArrives,
                         ::testing::Values(Layout::kOneNode, Layout::kNodePerRank));

TEST(Rendezvous, RankThatNeverConnectsIsNamed) {
  auto server = TcpStoreServer::Start("127.0.0.1", 0);
  ASSERT_TRUE(server.ok());
  auto store = TcpStore::Connect("127.0.0.1", (*server)->port(), absl::Now() + absl::Seconds(5));
  ASSERT_TRUE(store.ok());
  auto comm = CreateHostCommunicator(*store, 0, 3, "n0", ShortTimeout());
  ASSERT_TRUE(absl::IsDeadlineExceeded(comm.status())) << comm.status();
  EXPECT_NE(comm.status().message().find("rank 1 never arrived"), std::string::npos)
      << comm.status();
}

TEST(Work, WaitWithShortTimeoutReturnsWhileOperationContinues) {
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  std::latch both_waited(2);
  RunRanks(2, Layout::kOneNode, TestOptions(), [&](Communicator& c) {
    int64_t v = c.rank();
    if (c.rank() == 1) released.wait();  // rank 1 joins only after rank 0's Wait gave up
    WorkPtr w = c.AllReduceAsync(&v, &v, 1, DataType::kI64, ReduceOp::kSum);
    if (c.rank() == 0) {
      absl::Status early = w->Wait(absl::Milliseconds(1));
      EXPECT_TRUE(absl::IsDeadlineExceeded(early)) << early;
      EXPECT_NE(early.message().find("Work::Wait"), std::string::npos);
      release.set_value();
    }
    EXPECT_TRUE(w->Wait().ok());
    EXPECT_EQ(v, 1);
    both_waited.count_down();
  });
}

TEST(Arguments, BadPeerAndRootAreInvalidWithoutPoisoning) {
  RunRanks(2, Layout::kOneNode, TestOptions(), [](Communicator& c) {
    float x = 0;
    EXPECT_TRUE(absl::IsInvalidArgument(c.Send(&x, 1, DataType::kF32, 7)));
    EXPECT_TRUE(absl::IsInvalidArgument(c.Recv(&x, 1, DataType::kF32, c.rank())));
    EXPECT_TRUE(absl::IsInvalidArgument(c.Broadcast(&x, 1, DataType::kF32, -1)));
    EXPECT_TRUE(c.Barrier().ok());
  });
}

TEST(Arguments, MismatchedSendRecvSizesAreInvalidArgument) {
  RunRanks(2, Layout::kOneNode, TestOptions(), [](Communicator& c) {
    std::vector<float> buf(16);
    if (c.rank() == 0) {
      EXPECT_TRUE(c.Send(buf.data(), 16, DataType::kF32, 1).ok());
    } else {
      absl::Status s = c.Recv(buf.data(), 8, DataType::kF32, 0);
      EXPECT_TRUE(absl::IsInvalidArgument(s)) << s;
    }
  });
}

}  // namespace
}  // namespace sublet::collectives::testing

// The conformance suite over the host backend, ranks as threads, for world
// sizes 1 to 4 and each node layout (shared memory, TCP ring, mixed).
#include <gtest/gtest.h>

#include "tests/collectives/conformance.h"
#include "tests/collectives/rank_threads.h"

namespace sublet::collectives::testing {
namespace {

class HostConformance : public ::testing::TestWithParam<std::tuple<Layout, int>> {};

TEST_P(HostConformance, EveryOperationDtypeAndSize) {
  auto [layout, world] = GetParam();
  RunRanks(world, layout, TestOptions(), [](Communicator& c) { RunConformance(c); });
}

TEST_P(HostConformance, SplitIntoEvenAndOddRanks) {
  auto [layout, world] = GetParam();
  RunRanks(world, layout, TestOptions(), [](Communicator& c) { CheckSplit(c); });
}

TEST_P(HostConformance, LargeAllReduceAcrossManyRounds) {
  auto [layout, world] = GetParam();
  RunRanks(world, layout, TestOptions(), [](Communicator& c) {
    CheckAllReduce(c, DataType::kF32, ReduceOp::kSum, (size_t{3} << 20) + 5, false, 1);
    CheckAllReduce(c, DataType::kBF16, ReduceOp::kAvg, (size_t{1} << 20) + 3, true, 0);
  });
}

// Up to 512 bytes every rank reduces every rank's copy itself.
TEST_P(HostConformance, SmallAllReduceInPlaceAndMisaligned) {
  auto [layout, world] = GetParam();
  RunRanks(world, layout, TestOptions(), [](Communicator& c) {
    CheckAllReduce(c, DataType::kF32, ReduceOp::kSum, 100, true, 0);
    CheckAllReduce(c, DataType::kBF16, ReduceOp::kAvg, 77, true, 1);
    CheckAllReduce(c, DataType::kI64, ReduceOp::kMin, 64, false, 3);
  });
}

// Outputs of internal::kStreamingBytes and more are written with
// non-temporal stores; a count that is not a multiple of the round leaves a
// short last round.
TEST_P(HostConformance, LargeReduceScatterAndAllGatherStreamTheirOutputs) {
  auto [layout, world] = GetParam();
  RunRanks(world, layout, TestOptions(), [](Communicator& c) {
    CheckReduceScatter(c, DataType::kF32, ReduceOp::kSum, (size_t{9} << 18) + 7);
    CheckAllGather(c, DataType::kI32, (size_t{9} << 18) / c.size() + 3);
  });
}

// Two nodes of two ranks: the allreduce goes hierarchical (shared memory in
// the node, TCP between nodes) and still matches the reference.
TEST(HostHierarchy, TwoNodesOfTwoRanksUseSharedMemoryAndTcp) {
  RunRanks(4, Layout::kTwoNodes, TestOptions(), [](Communicator& c) {
    EXPECT_EQ(c.backend_name(), "host(shm+tcp)");
    for (ReduceOp op : kAllReduceOps) CheckAllReduce(c, DataType::kI32, op, 100003, false, 0);
    CheckAllReduce(c, DataType::kBF16, ReduceOp::kAvg, 4097, true, 1);
  });
}

std::string Name(const ::testing::TestParamInfo<std::tuple<Layout, int>>& info) {
  const char* layouts[] = {"OneNode", "NodePerRank", "TwoNodes"};
  return std::string(layouts[static_cast<int>(std::get<0>(info.param))]) + "World" +
         std::to_string(std::get<1>(info.param));
}

INSTANTIATE_TEST_SUITE_P(Worlds, HostConformance,
                         ::testing::Combine(::testing::Values(Layout::kOneNode,
                                                              Layout::kNodePerRank,
                                                              Layout::kTwoNodes),
                                            ::testing::Values(1, 2, 3, 4)),
                         Name);

}  // namespace
}  // namespace sublet::collectives::testing

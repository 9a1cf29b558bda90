// End to end: ranks of a 2-node job find each other through the rendezvous
// the service assigns and all-reduce over TCP; when one rank hangs, the other
// fails on the collective timeout and the job's events say which operation
// and which peer.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/e2e/test_cluster.h"

namespace sublet::e2e {
namespace {

using ::testing::HasSubstr;
using nlohmann::json;

std::string CollectiveSpec(const std::string& args) {
  return "name: allreduce\nresources: {nodes: 2, gpus_per_node: 1}\ncommand: [" +
         Bin("../tests/collective_rank") + ", " + args + "]\nmax_restarts: 0\n";
}

TEST(CollectiveE2eTest, RanksOnTwoNodesRendezvousAndAllReduce) {
  TestCluster cluster({});
  std::string id = cluster.Submit(cluster.WriteSpec("ok", CollectiveSpec("'5'")));
  cluster.WaitForState(id, "succeeded");
  CommandResult logs = cluster.Sublet({"logs", id, "--rank", "1"});
  EXPECT_THAT(logs.out, HasSubstr("rank 1: 5 allreduces ok"));
}

TEST(CollectiveE2eTest, RankStuckInACollectiveIsReportedWithTheOperationAndPeer) {
  TestCluster cluster({});
  std::string id = cluster.Submit(cluster.WriteSpec("stuck", CollectiveSpec("'5', '1'")));
  json job = cluster.WaitForState(id, "failed");
  const std::string reason = job["reason"];
  EXPECT_THAT(reason, HasSubstr("rank 0 on node-0 exited with code 1"));
  EXPECT_THAT(reason, HasSubstr("DEADLINE_EXCEEDED"));
  EXPECT_THAT(reason, HasSubstr("allreduce"));
  EXPECT_THAT(reason, HasSubstr("rank 1"));
}

}  // namespace
}  // namespace sublet::e2e

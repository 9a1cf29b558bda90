#include "coordinator/gpu_ledger.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace sublet::coordinator {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

// A job with one rank per (node, gpu) pair given.
Job JobWith(uint64_t id, std::vector<std::pair<std::string, uint32_t>> placed) {
  Job job;
  job.id = id;
  uint32_t rank = 0;
  for (auto& [node, gpu] : placed) {
    RankRecord r;
    r.rank = rank++;
    r.node = node;
    r.gpus = {gpu};
    job.ranks.push_back(r);
  }
  return job;
}

TEST(GpuLedgerTest, HoldsTheGpusOfRanksThatHaveNotExited) {
  GpuLedger ledger;
  ledger.Update(JobWith(1, {{"a", 0}, {"a", 2}, {"b", 1}}));
  EXPECT_THAT(ledger.Held("a", 4), ElementsAre(true, false, true, false));
  EXPECT_THAT(ledger.Free("a", 4), ElementsAre(1, 3));
  EXPECT_THAT(ledger.Free("b", 2), ElementsAre(0));
  EXPECT_THAT(ledger.Free("c", 2), ElementsAre(0, 1));
  EXPECT_TRUE(ledger.IsLive(1));
}

TEST(GpuLedgerTest, AnExitedRankFreesItsGpuAndTheLastOneEndsTheJob) {
  GpuLedger ledger;
  Job job = JobWith(7, {{"a", 0}, {"b", 0}});
  ledger.Update(job);
  job.ranks[0].exited = true;
  EXPECT_FALSE(ledger.Update(job)) << "rank 1 still runs";
  EXPECT_THAT(ledger.Free("a", 1), ElementsAre(0));
  EXPECT_THAT(ledger.JobsOn("a"), IsEmpty());
  EXPECT_THAT(ledger.JobsOn("b"), ElementsAre(7));
  job.ranks[1].exited = true;
  EXPECT_TRUE(ledger.Update(job)) << "its last live rank is gone";
  EXPECT_FALSE(ledger.IsLive(7));
  EXPECT_FALSE(ledger.Update(job)) << "ending is reported once";
}

TEST(GpuLedgerTest, AnUpdateReplacesWhatTheLedgerKnewOfTheJob) {
  GpuLedger ledger;
  ledger.Update(JobWith(3, {{"a", 0}, {"a", 1}}));
  ledger.Update(JobWith(3, {{"b", 1}}));  // a new attempt elsewhere
  EXPECT_THAT(ledger.Free("a", 2), ElementsAre(0, 1));
  EXPECT_THAT(ledger.JobsOn("b"), ElementsAre(3));
}

TEST(GpuLedgerTest, ListsTheLiveJobsOnANodeById) {
  GpuLedger ledger;
  ledger.Update(JobWith(9, {{"a", 1}}));
  ledger.Update(JobWith(2, {{"a", 0}}));
  ledger.Update(JobWith(5, {{"b", 0}}));
  EXPECT_THAT(ledger.JobsOn("a"), ElementsAre(2, 9));
  EXPECT_THAT(ledger.live_jobs(), ElementsAre(2, 5, 9));
}

TEST(GpuLedgerTest, AJobThatNeverPlacedARankIsNotLive) {
  GpuLedger ledger;
  EXPECT_FALSE(ledger.Update(JobWith(4, {})));
  EXPECT_FALSE(ledger.IsLive(4));
  ledger.Update(JobWith(5, {{"a", 0}}));
  ledger.Clear();
  EXPECT_THAT(ledger.live_jobs(), IsEmpty());
  EXPECT_THAT(ledger.Free("a", 1), ElementsAre(0));
}

TEST(GpuLedgerTest, AGpuBeyondTheNodesCountIsStillHeld) {
  // A worker that came back with fewer GPUs: what runs keeps its GPU.
  GpuLedger ledger;
  ledger.Update(JobWith(1, {{"a", 3}}));
  EXPECT_THAT(ledger.Held("a", 2), ElementsAre(false, false, false, true));
  EXPECT_THAT(ledger.Free("a", 2), ElementsAre(0, 1));
}

}  // namespace
}  // namespace sublet::coordinator

// Quotas, borrowing and fair share: the scheduler's quota pass (scheduler.h
// rule 7), the share arithmetic (fair_share.h), the config and submit checks.
#include "coordinator/fair_share.h"

#include <map>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "coordinator/config.h"
#include "tests/coordinator/cluster_fixture.h"
#include "coordinator/scheduler.h"
#include "tests/coordinator/sched_results.h"

namespace sublet::coordinator {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::UnorderedElementsAre;

const absl::Time kNow = absl::FromUnixSeconds(1'800'000'000);

std::vector<SchedNode> Nodes(int count, uint32_t gpus) {
  std::vector<SchedNode> nodes;
  for (int i = 0; i < count; ++i) {
    SchedNode n{"node-" + std::to_string(i), gpus, {}, true};
    for (uint32_t g = 0; g < gpus; ++g) n.free_gpus.push_back(g);
    nodes.push_back(std::move(n));
  }
  return nodes;
}

// A job of `tenant` (index), `nodes` x `gpus`, submitted `order`-th.
SchedJob Job(uint64_t id, uint32_t tenant, uint32_t nodes, uint32_t gpus, uint64_t order,
             int priority = 1) {
  SchedJob j{id, priority, order, nodes, gpus};
  j.tenant = tenant;
  return j;
}

SchedTenant Tenant(const std::string& name, uint32_t quota,
                   std::optional<uint32_t> borrow_limit = std::nullopt, double weight = 1,
                   uint32_t in_use = 0, double history = 0) {
  return {name, quota, borrow_limit, weight, in_use, history};
}

// GPUs placed per tenant name.
std::map<std::string, uint32_t> GpusByTenant(const SchedResult& r, const std::vector<SchedJob>& jobs,
                                             const SchedPolicy& policy) {
  std::map<std::string, uint32_t> out;
  for (const Placement& p : r.placements) {
    for (const SchedJob& j : jobs) {
      if (j.id != p.job_id) continue;
      out[policy.tenants[j.tenant].name] += static_cast<uint32_t>(p.nodes.size()) * j.gpus_per_node;
    }
  }
  return out;
}

// One pass, asserting the GPUs each tenant gets.
struct Scenario {
  std::string name;
  int nodes;
  uint32_t gpus_per_node;
  std::vector<SchedTenant> tenants;
  std::vector<SchedJob> jobs;
  std::map<std::string, uint32_t> placed_gpus;
};

class QuotaPass : public ::testing::TestWithParam<Scenario> {};

TEST_P(QuotaPass, GivesEachTenantExactlyItsGpus) {
  const Scenario& s = GetParam();
  SchedPolicy policy{true, s.tenants};
  SchedResult r = Schedule(Nodes(s.nodes, s.gpus_per_node), {}, s.jobs, kNow, policy);
  EXPECT_EQ(GpusByTenant(r, s.jobs, policy), s.placed_gpus);
}

std::vector<SchedJob> Stream(uint32_t tenant, uint64_t first_id, int count, uint32_t gpus,
                             uint64_t first_order, int priority = 1) {
  std::vector<SchedJob> jobs;
  for (int i = 0; i < count; ++i) {
    jobs.push_back(Job(first_id + i, tenant, 1, gpus, first_order + i, priority));
  }
  return jobs;
}

std::vector<SchedJob> Concat(std::vector<SchedJob> a, const std::vector<SchedJob>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

INSTANTIATE_TEST_SUITE_P(
    Scenarios, QuotaPass,
    ::testing::Values(
        // Idle capacity is borrowed: a's quota is 2, it gets all 8.
        Scenario{"BorrowsIdleCapacity", 4, 2, {Tenant("a", 2), Tenant("b", 6)},
                 Stream(0, 1, 4, 2, 1), {{"a", 8}}},
        // borrow_limit 2 caps a at quota + 2.
        Scenario{"BorrowLimitCaps", 4, 2, {Tenant("a", 2, 2), Tenant("b", 6)},
                 Stream(0, 1, 4, 2, 1), {{"a", 4}}},
        // borrow_limit 0: never beyond the quota.
        Scenario{"BorrowLimitZeroNeverBorrows", 4, 2, {Tenant("a", 2, 0), Tenant("b", 6)},
                 Stream(0, 1, 4, 2, 1), {{"a", 2}}},
        // b's jobs within its quota go before a's earlier, higher-priority flood.
        Scenario{"WithinQuotaBeforeAnEarlierHigherPriorityFlood", 4, 2,
                 {Tenant("a", 0), Tenant("b", 6)},
                 Concat(Stream(0, 1, 8, 1, 1, /*priority=*/2), Stream(1, 100, 3, 2, 50)),
                 {{"a", 2}, {"b", 6}}},
        // Weights 1:2 with no quotas: the borrowers split the cluster 1:2.
        Scenario{"Weights1To2SplitTheCluster1To2", 6, 2,
                 {Tenant("a", 0, std::nullopt, 1), Tenant("b", 0, std::nullopt, 2)},
                 Concat(Stream(0, 1, 6, 2, 1), Stream(1, 100, 6, 2, 100)), {{"a", 4}, {"b", 8}}},
        // Equal weights, equal use: an equal split.
        Scenario{"EqualWeightsSplitEvenly", 4, 2, {Tenant("a", 0), Tenant("b", 0)},
                 Concat(Stream(0, 1, 4, 2, 1), Stream(1, 100, 4, 2, 100)), {{"a", 4}, {"b", 4}}},
        // Decayed history: a used the cluster lately, so b borrows first.
        Scenario{"DecayedHistoryGoesLast", 1, 2,
                 {Tenant("a", 0, std::nullopt, 1, 0, 0.5), Tenant("b", 0)},
                 Concat(Stream(0, 1, 2, 2, 1), Stream(1, 100, 1, 2, 100)), {{"b", 2}}},
        // A tenant already holding GPUs (in_use) counts them against its quota.
        Scenario{"HeldGpusCountAgainstTheQuota", 4, 2, {Tenant("a", 4, 0, 1, 4), Tenant("b", 0)},
                 Stream(0, 1, 2, 2, 1), {}}),
    [](const ::testing::TestParamInfo<Scenario>& info) { return info.param.name; });

TEST(FairShareTest, WithoutQuotasTheOrderIsPriorityThenSubmitOrder) {
  // The same jobs with the policy off: the flood of a's high-priority jobs wins.
  std::vector<SchedJob> jobs = Concat(Stream(0, 1, 8, 1, 1, 2), Stream(1, 100, 3, 2, 50));
  SchedResult r = Schedule(Nodes(4, 2), {}, jobs, kNow);
  EXPECT_THAT(Placed(r), ElementsAre(1, 2, 3, 4, 5, 6, 7, 8));
}

TEST(FairShareTest, ABorrowerThatCannotBorrowSaysWhichQuotaHoldsIt) {
  SchedPolicy policy{true, {Tenant("acme", 2), Tenant("globex", 2)}};
  // Every GPU is held (acme its 2, globex the rest); acme's next job would borrow.
  std::vector<SchedNode> nodes = Nodes(2, 2);
  nodes[0].free_gpus.clear();
  nodes[1].free_gpus.clear();
  policy.tenants[0].in_use = 2;
  SchedResult r = Schedule(nodes, {}, {Job(7, 0, 1, 2, 1)}, kNow, policy);
  EXPECT_THAT(Placed(r), ::testing::IsEmpty());
  EXPECT_THAT(ReasonOf(r, 7), HasSubstr("acme uses 2 of its 2-GPU quota and no idle GPUs can be "
                                        "borrowed for this job"));
}

TEST(FairShareTest, AJobBeyondTheBorrowLimitWaitsNamingTheLimit) {
  SchedPolicy policy{true, {Tenant("acme", 2, 1)}};
  SchedResult r = Schedule(Nodes(4, 2), {}, {Job(1, 0, 2, 2, 1)}, kNow, policy);
  EXPECT_THAT(Placed(r), ::testing::IsEmpty());
  EXPECT_THAT(ReasonOf(r, 1), HasSubstr("acme uses 0 of its 2-GPU quota and may borrow at most "
                                        "1 GPU more (borrow_limit); this job needs 4 GPUs"));
}

TEST(FairShareTest, ABigGangWithinItsQuotaIsNotStarvedBySmallBorrowers) {
  // 4 nodes x 2; node-0 is busy for an hour. b's 4-node gang is within its
  // quota and becomes the head; a's small jobs (no time limit) may not take
  // the nodes it is promised, however many a submits.
  std::vector<SchedNode> nodes = Nodes(4, 2);
  nodes[0].free_gpus.clear();
  std::vector<SchedRunning> running = {{0, 2, kNow + absl::Hours(1)}};
  SchedPolicy policy{true, {Tenant("a", 0), Tenant("b", 8)}};
  std::vector<SchedJob> jobs = Concat({Job(100, 1, 4, 2, 50)}, Stream(0, 1, 20, 1, 1, 2));
  SchedResult r = Schedule(nodes, running, jobs, kNow, policy);
  EXPECT_THAT(Placed(r), ::testing::IsEmpty());
  EXPECT_EQ(r.head_job, 100u);
  EXPECT_THAT(ReasonOf(r, 1), HasSubstr("waiting behind job 100"));
}

TEST(FairShareTest, ShareArithmetic) {
  EXPECT_DOUBLE_EQ(DecayFactor(absl::Hours(24 * 7), absl::Hours(24 * 7)), 0.5);
  EXPECT_DOUBLE_EQ(DecayFactor(absl::Hours(24 * 14), absl::Hours(24 * 7)), 0.25);
  EXPECT_DOUBLE_EQ(DecayFactor(absl::ZeroDuration(), absl::Hours(1)), 1.0);
  EXPECT_DOUBLE_EQ(DecayFactor(-absl::Hours(1), absl::Hours(1)), 1.0);
  // 8 GPUs busy for ever decay to 8 * H / ln 2 GPU-seconds: a history of 1.
  const absl::Duration h = absl::Hours(1);
  EXPECT_NEAR(HistoryFraction(8 * 3600 / std::log(2.0), 8, h), 1.0, 1e-12);
  EXPECT_EQ(HistoryFraction(100, 0, h), 0);
  EXPECT_DOUBLE_EQ(WeightedShare(4, 0.25, 16, 2), (0.25 + 0.25) / 2);
  EXPECT_EQ(WeightedShare(4, 0, 0, 1), 0);
}

TEST(FairShareTest, QuotasShrinkInProportionWhenThePoolIsSmallerThanTheirSum) {
  EXPECT_THAT(EffectiveQuotas({8, 8}, 32), ElementsAre(8, 8));  // they fit: as configured
  EXPECT_THAT(EffectiveQuotas({16, 8, 8}, 16), ElementsAre(8, 4, 4));
  EXPECT_THAT(EffectiveQuotas({10, 10, 10}, 16), ElementsAre(6, 5, 5));  // remainder to the first
  EXPECT_THAT(EffectiveQuotas({3, 0, 7}, 5), ElementsAre(2, 0, 3));  // 1.5, 0, 3.5: ties go first
  EXPECT_THAT(EffectiveQuotas({4, 4}, 0), ElementsAre(0, 0));
  for (uint32_t pool = 0; pool <= 40; ++pool) {
    std::vector<uint32_t> q = EffectiveQuotas({13, 9, 7, 11}, pool);
    EXPECT_EQ(q[0] + q[1] + q[2] + q[3], std::min<uint32_t>(pool, 40)) << pool;
  }
}

TEST(FairShareTest, MaxPriorityDefaultsToNormalOnlyOncePoliciesAreConfigured) {
  EXPECT_EQ(AllowedPriority({}, false), protocols::Priority::kHigh);
  EXPECT_EQ(AllowedPriority({}, true), protocols::Priority::kNormal);
  TenantPolicy low;
  low.max_priority = protocols::Priority::kLow;
  EXPECT_EQ(AllowedPriority(low, false), protocols::Priority::kLow);
}

constexpr const char* kPolicyConfig = R"(
storage_root: /srv/sublet
fair_share: {half_life: 3d}
tenants:
  - {name: acme, token: a, quota: {gpus: 8}, borrow_limit: {gpus: 4}, weight: 2.5, max_priority: high}
  - {name: globex, token: g}
)";

TEST(FairShareConfigTest, ParsesQuotaBorrowLimitWeightMaxPriorityAndHalfLife) {
  auto config = ParseConfig(kPolicyConfig);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_TRUE(config->policies_configured);
  EXPECT_EQ(config->fair_share_half_life, absl::Hours(72));
  TenantPolicy acme = config->PolicyOf("acme");
  EXPECT_EQ(acme.quota_gpus, 8u);
  EXPECT_EQ(acme.borrow_limit_gpus, 4u);
  EXPECT_DOUBLE_EQ(acme.weight, 2.5);
  EXPECT_EQ(acme.max_priority, protocols::Priority::kHigh);
  TenantPolicy globex = config->PolicyOf("globex");
  EXPECT_EQ(globex.quota_gpus, std::nullopt);
  EXPECT_EQ(globex.borrow_limit_gpus, std::nullopt);
  EXPECT_DOUBLE_EQ(globex.weight, 1.0);
}

TEST(FairShareConfigTest, WithoutPoliciesNothingIsConfigured) {
  auto config = ParseConfig("storage_root: /x\ntenants:\n  - {name: acme, token: a}\n");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_FALSE(config->policies_configured);
}

TEST(FairShareConfigTest, BadValuesAreRefusedNamingTheField) {
  struct Case {
    std::string tenant;
    std::string field;
  };
  for (const Case& c : std::vector<Case>{
           {"quota: 8", "tenants[0].quota: expected {gpus: N}"},
           {"quota: {gpus: -1}", "tenants[0].quota.gpus: must be a whole number"},
           {"quota: {cpus: 4}", "tenants[0].quota.cpus: unknown field"},
           {"borrow_limit: {gpus: x}", "tenants[0].borrow_limit.gpus: must be a whole number"},
           {"weight: 0", "tenants[0].weight: must be a number above 0"},
           {"weight: nan", "tenants[0].weight: must be a number above 0"},
           {"max_priority: urgent", "tenants[0].max_priority: must be low, normal or high"},
       }) {
    auto config = ParseConfig("storage_root: /x\ntenants:\n  - {name: acme, token: a, " +
                              c.tenant + "}\n");
    EXPECT_FALSE(config.ok()) << c.tenant;
    EXPECT_THAT(config.status().message(), HasSubstr(c.field)) << c.tenant;
  }
  auto admin = ParseConfig("storage_root: /x\nadmins:\n  - {name: i, token: t, quota: {gpus: 1}}\n");
  EXPECT_THAT(admin.status().message(), HasSubstr("admins[0].quota: unknown field"));
  auto half = ParseConfig("storage_root: /x\nfair_share: {half_life: soon}\n");
  EXPECT_THAT(half.status().message(), HasSubstr("fair_share.half_life"));
}

class FairShareClusterTest : public ClusterTest {
 protected:
  // acme (quota `quota`, never borrows) and globex (quota `quota`) on 2
  // nodes x 2: acme submits two 2-GPU jobs, globex one. acme's first job and
  // globex's run; its second waits on the limit of a 2-GPU quota in force.
  void ExpectAcmeHeldAtTwoGpus(uint32_t quota) {
    config_.policies_configured = true;
    config_.tenant_policies["acme"].quota_gpus = quota;
    config_.tenant_policies["acme"].borrow_limit_gpus = 0;
    config_.tenant_policies["globex"].quota_gpus = quota;
    Report("node-a");
    Report("node-b");
    uint64_t first = Submit(Spec(1, 2));
    uint64_t second = Submit(Spec(1, 2));
    uint64_t theirs = InTxn([&] { return *cluster_->Submit("globex", Spec(1, 2)); });
    Schedule();
    EXPECT_EQ(JobById(first).state, JobState::kRunning);
    EXPECT_EQ(JobById(theirs).state, JobState::kRunning);
    EXPECT_EQ(JobById(second).state, JobState::kPending);
    EXPECT_THAT(JobById(second).reason,
                HasSubstr("acme uses 2 of its 2-GPU quota and may borrow at most 0 GPUs more"));
  }
};

TEST_F(FairShareClusterTest, ATenantAtItsBorrowLimitWaitsWhileAnotherGetsItsQuota) {
  ExpectAcmeHeldAtTwoGpus(2);  // 2 + 2 quotas fit the 4-GPU pool
}

TEST_F(FairShareClusterTest, APoolSmallerThanTheQuotasShrinksEveryGuaranteeInProportion) {
  ExpectAcmeHeldAtTwoGpus(4);  // 4 + 4 over 4 GPUs: each guarantee is scaled to 2
}

TEST_F(FairShareClusterTest, AReclaimShrinksTheQuotasInForceAndAReleaseRestoresThem) {
  config_.policies_configured = true;
  config_.tenant_policies["acme"].quota_gpus = 2;
  config_.tenant_policies["globex"].quota_gpus = 2;
  Report("node-a");
  Report("node-b");
  auto in_force = [&] {
    std::map<std::string, uint32_t> out;
    for (const protocols::TenantInfo& t : cluster_->Tenants(std::nullopt).tenants) {
      out[t.name] = t.quota_in_force_gpus;
      EXPECT_EQ(t.quota_gpus, 2u) << "the configured quota is shown unchanged";
    }
    return out;
  };
  EXPECT_EQ(in_force(), (std::map<std::string, uint32_t>{{"acme", 2}, {"globex", 2}}));
  const uint64_t reclaim = InTxn([&] {
    return *cluster_->StartReclaim("infra", {{"node-b"}, 0, 60'000, "internal eval"});
  });
  EXPECT_EQ(cluster_->Tenants(std::nullopt).pool_gpus, 2u);
  EXPECT_EQ(in_force(), (std::map<std::string, uint32_t>{{"acme", 1}, {"globex", 1}}));
  EXPECT_TRUE(InTxn([&] { return cluster_->Release("infra", {reclaim, {}}); }).ok());
  EXPECT_EQ(in_force(), (std::map<std::string, uint32_t>{{"acme", 2}, {"globex", 2}}));
}

TEST_F(FairShareClusterTest, APriorityAboveTheTenantsMaxIsRefusedAtSubmitNamingTheField) {
  protocols::JobSpec high = Spec(1, 1);
  high.priority = protocols::Priority::kHigh;
  // Without any policy: today's behaviour, every priority allowed.
  EXPECT_TRUE(InTxn([&] { return cluster_->Submit("acme", high); }).ok());
  config_.policies_configured = true;  // e.g. another tenant got a quota: the default is normal
  auto refused = InTxn([&] { return cluster_->Submit("acme", high); });
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(refused.status().message(),
              HasSubstr("priority: high is above tenant acme's max_priority (normal)"));
  config_.tenant_policies["acme"].max_priority = protocols::Priority::kHigh;
  EXPECT_TRUE(InTxn([&] { return cluster_->Submit("acme", high); }).ok());
}

// acme (quota `quota`, never borrows) and globex (quota `quota`) on 2 nodes x
// 2: acme submits two 2-GPU jobs, globex one. Whether the quotas fit the
// 4-GPU pool (2 + 2) or not (4 + 4, scaled to 2 + 2), acme's guarantee in
// force is 2: its first job and globex's run, its second waits on the limit.
TEST_F(FairShareClusterTest, WithinQuotaJobsGoBeforeAnEarlierBorrowersJobs) {
  config_.policies_configured = true;
  config_.tenant_policies["globex"].quota_gpus = 4;
  Report("node-a");
  Report("node-b");
  protocols::JobSpec normal = Spec(1, 2);
  std::vector<uint64_t> acme = {Submit(normal), Submit(normal)};  // acme: no quota, borrows
  uint64_t theirs = InTxn([&] { return *cluster_->Submit("globex", Spec(2, 2)); });
  Schedule();
  EXPECT_EQ(JobById(theirs).state, JobState::kRunning);
  for (uint64_t id : acme) {
    EXPECT_EQ(JobById(id).state, JobState::kPending);
    EXPECT_THAT(JobById(id).reason, HasSubstr("acme uses 0 of its 0-GPU quota and no idle GPUs "
                                              "can be borrowed"));
  }
}

TEST_F(FairShareClusterTest, TenantsShowQuotaUseBorrowingAndPendingAndOnlyTheirOwnRow) {
  config_.policies_configured = true;
  config_.tenant_policies["acme"].quota_gpus = 2;
  config_.tenant_policies["acme"].weight = 2;
  Report("node-a");
  Report("node-b");
  Submit(Spec(2, 2));  // 4 GPUs: 2 within the quota, 2 borrowed
  uint64_t waiting = Submit(Spec(2, 2));
  Schedule();
  EXPECT_EQ(JobById(waiting).state, JobState::kPending);
  protocols::TenantListReply all = cluster_->Tenants(std::nullopt);
  EXPECT_TRUE(all.policies);
  EXPECT_EQ(all.pool_gpus, 4u);
  ASSERT_EQ(all.tenants.size(), 2u);  // acme and globex, by name
  const protocols::TenantInfo& acme = all.tenants[0];
  EXPECT_EQ(acme.name, "acme");
  EXPECT_EQ(acme.quota_gpus, 2u);
  EXPECT_EQ(acme.borrow_limit_gpus, std::nullopt);
  EXPECT_EQ(acme.max_priority, protocols::Priority::kNormal);
  EXPECT_EQ(acme.in_use_gpus, 4u);
  EXPECT_EQ(acme.borrowed_gpus, 2u);
  EXPECT_EQ(acme.pending_jobs, 1u);
  EXPECT_EQ(acme.pending_gpus, 4u);
  EXPECT_DOUBLE_EQ(acme.share, (4.0 / 4 + 0) / 2);  // nothing used yet: no history
  EXPECT_EQ(all.tenants[1].name, "globex");
  EXPECT_EQ(all.tenants[1].in_use_gpus, 0u);
  protocols::TenantListReply mine = cluster_->Tenants(std::string("globex"));
  ASSERT_EQ(mine.tenants.size(), 1u);
  EXPECT_EQ(mine.tenants[0].name, "globex");
}

TEST_F(FairShareClusterTest, PendingJobsArePositionedInTheirTenantsQueueByPriorityThenAge) {
  protocols::JobSpec low = Spec(1, 1), high = Spec(1, 1);
  low.priority = protocols::Priority::kLow;
  high.priority = protocols::Priority::kHigh;
  uint64_t a = Submit(low);
  uint64_t b = Submit(Spec(1, 1));
  uint64_t c = Submit(high);
  uint64_t d = Submit(Spec(1, 1));
  uint64_t theirs = InTxn([&] { return *cluster_->Submit("globex", Spec(1, 1)); });
  std::map<uint64_t, uint32_t> positions = cluster_->QueuePositions();
  EXPECT_EQ(positions[c], 1u);
  EXPECT_EQ(positions[b], 2u);
  EXPECT_EQ(positions[d], 3u);
  EXPECT_EQ(positions[a], 4u);
  EXPECT_EQ(positions[theirs], 1u) << "each tenant's queue counts from 1";
  Report("node-a");
  Schedule();  // node-a has 2 GPUs: some start, the rest keep a position
  for (const auto& [id, pos] : cluster_->QueuePositions()) {
    EXPECT_EQ(JobById(id).state, JobState::kPending) << "only pending jobs have a position";
  }
}

}  // namespace
}  // namespace sublet::coordinator

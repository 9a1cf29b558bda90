// Fairness preemption (fairness.h): getting a guarantee back from borrowers,
// as a pure policy (scenarios asserting exact victims, reasons and shares
// after each step, many passes without a cycle) and through the Cluster
// (the reclaim path's notice, grace, acknowledged checkpoint and requeue).
#include "coordinator/fairness.h"

#include <map>
#include <set>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "coordinator/config.h"
#include "coordinator/scheduler.h"
#include "fmt/format.h"
#include "tests/coordinator/cluster_fixture.h"

namespace sublet::coordinator {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::SizeIs;

const absl::Time kNow = absl::FromUnixSeconds(1'800'000'000);

// A cluster snapshot for the pure policy: nodes, the jobs holding GPUs, the
// tenants (their in_use follows the jobs).
class World {
 public:
  World(int nodes, uint32_t gpus) {
    for (int i = 0; i < nodes; ++i) {
      nodes_.push_back({"node-" + std::to_string(i), gpus, {}, true});
    }
  }
  // Tenants in index order.
  World& Tenant(const std::string& name, uint32_t quota, double weight = 1) {
    tenants_.push_back({name, quota, std::nullopt, weight, 0, 0});
    return *this;
  }
  // A running job of `tenant` holding `gpus` on each of `on`, started `age` ago.
  World& Run(uint64_t id, uint32_t tenant, std::vector<uint32_t> on, uint32_t gpus,
             absl::Duration age = absl::Hours(1), double work = 100, int priority = 1,
             bool returning = false) {
    FairnessJob j;
    j.id = id;
    j.tenant = tenant;
    j.priority = priority;
    for (uint32_t n : on) j.gpus.push_back({n, gpus});
    j.returning = returning;
    j.eligible_at = kNow - age + min_runtime_;
    j.work_since_checkpoint = work;
    live_.push_back(j);
    return *this;
  }
  World& Returning(uint64_t id, uint32_t tenant, uint32_t node, uint32_t gpus) {
    return Run(id, tenant, {node}, gpus, absl::Hours(1), 0, 1, /*returning=*/true);
  }
  World& Pending(uint64_t id, uint32_t tenant, uint32_t nodes, uint32_t gpus, int priority = 1) {
    SchedJob j{id, priority, id, nodes, gpus};
    j.tenant = tenant;
    pending_.push_back(j);
    return *this;
  }

  FairnessResult Choose() const {
    std::vector<SchedNode> nodes = nodes_;
    std::vector<uint32_t> held(nodes.size(), 0);
    std::vector<SchedTenant> tenants = tenants_;
    for (const FairnessJob& j : live_) {
      for (auto [n, g] : j.gpus) {
        held[n] += g;
        tenants[j.tenant].in_use += g;
      }
    }
    for (size_t n = 0; n < nodes.size(); ++n) {
      for (uint32_t g = held[n]; g < nodes[n].total_gpus; ++g) nodes[n].free_gpus.push_back(g);
    }
    return ChooseFairnessPreemptions(nodes, live_, pending_, tenants, kNow);
  }

  absl::Duration min_runtime_ = absl::Minutes(10);

 private:
  std::vector<SchedNode> nodes_;
  std::vector<SchedTenant> tenants_;
  std::vector<FairnessJob> live_;
  std::vector<SchedJob> pending_;
};

// preemptor -> victims
std::map<uint64_t, std::vector<uint64_t>> Victims(const FairnessResult& r) {
  std::map<uint64_t, std::vector<uint64_t>> out;
  for (const FairnessPreemption& p : r.preemptions) out[p.preemptor] = p.victims;
  return out;
}

using VictimMap = std::map<uint64_t, std::vector<uint64_t>>;

TEST(FairnessTest, ABorrowerGivesBackOneJobForAJobWithinItsTenantsQuota) {
  // acme (quota 8) holds both nodes; globex (quota 8) asks for one node.
  FairnessResult r = World(2, 8)
                         .Tenant("acme", 8)
                         .Tenant("globex", 8)
                         .Run(1, 0, {0}, 8, absl::Hours(1), /*work=*/500)
                         .Run(2, 0, {1}, 8, absl::Hours(1), /*work=*/100)
                         .Pending(10, 1, 1, 8)
                         .Choose();
  EXPECT_EQ(Victims(r), (VictimMap{{10, {2}}}));  // the least work since its checkpoint
  EXPECT_THAT(r.preemptions[0].why.at(2),
              HasSubstr("for job 10 of tenant globex, which needs 8 GPUs within its 8-GPU quota: "
                        "tenant acme borrows beyond its 8-GPU quota"));
}

TEST(FairnessTest, AsFewVictimsAsPossibleBeforeLeastWork) {
  FairnessResult r = World(2, 8)
                         .Tenant("acme", 0)
                         .Tenant("globex", 8)
                         .Run(1, 0, {0}, 8, absl::Hours(1), /*work=*/10'000)
                         .Run(2, 0, {1}, 4, absl::Hours(1), /*work=*/1)
                         .Run(3, 0, {1}, 4, absl::Hours(1), /*work=*/1)
                         .Pending(10, 1, 1, 8)
                         .Choose();
  EXPECT_EQ(Victims(r), (VictimMap{{10, {1}}}));
}

TEST(FairnessTest, TheBorrowerWithTheHighestShareGivesBackFirst) {
  // acme and initech both borrow 8 GPUs; initech's weight 2 halves its share.
  FairnessResult r = World(3, 8)
                         .Tenant("acme", 0)
                         .Tenant("globex", 8)
                         .Tenant("initech", 0, /*weight=*/2)
                         .Run(1, 2, {0}, 8, absl::Hours(1), /*work=*/1)
                         .Run(2, 0, {1}, 8, absl::Hours(1), /*work=*/1000)
                         .Run(3, 1, {2}, 8)  // globex's own job holds the third node
                         .Pending(10, 1, 1, 8)
                         .Choose();
  // globex uses 8 of a 16-GPU quota; it gets 8 more from acme (share 1/3 vs 1/6).
  EXPECT_EQ(Victims(r), (VictimMap{}));  // globex's quota is 8: 8 + 8 is beyond it
  FairnessResult within = World(3, 8)
                              .Tenant("acme", 0)
                              .Tenant("globex", 16)
                              .Tenant("initech", 0, /*weight=*/2)
                              .Run(1, 2, {0}, 8, absl::Hours(1), /*work=*/1)
                              .Run(2, 0, {1}, 8, absl::Hours(1), /*work=*/1000)
                              .Run(3, 1, {2}, 8)
                              .Pending(10, 1, 1, 8)
                              .Choose();
  EXPECT_EQ(Victims(within), (VictimMap{{10, {2}}}));
}

TEST(FairnessTest, ThenTheLowestPriorityThenTheLeastWork) {
  FairnessResult r = World(3, 8)
                         .Tenant("acme", 0)
                         .Tenant("globex", 8)
                         .Run(1, 0, {0}, 8, absl::Hours(1), /*work=*/1, /*priority=*/2)
                         .Run(2, 0, {1}, 8, absl::Hours(1), /*work=*/900, /*priority=*/0)
                         .Run(3, 0, {2}, 8, absl::Hours(1), /*work=*/800, /*priority=*/0)
                         .Pending(10, 1, 1, 8)
                         .Choose();
  EXPECT_EQ(Victims(r), (VictimMap{{10, {3}}}));
}

TEST(FairnessTest, AJobThatWouldTakeItsTenantBeyondItsQuotaPreemptsNothing) {
  FairnessResult r = World(2, 8)
                         .Tenant("acme", 8)
                         .Tenant("globex", 4)
                         .Run(1, 0, {0}, 8)
                         .Run(2, 0, {1}, 8)
                         .Pending(10, 1, 1, 8)
                         .Choose();
  EXPECT_THAT(r.preemptions, IsEmpty());
  EXPECT_THAT(r.waiting, IsEmpty());  // the quota pass's reason stands
}

TEST(FairnessTest, ATenantWithinItsQuotaIsNeverAVictim) {
  // acme uses exactly its quota on node-0; initech borrows node-1.
  World world(2, 8);
  world.Tenant("acme", 8).Tenant("globex", 8).Tenant("initech", 0);
  world.Run(1, 0, {0}, 8, absl::Hours(1), /*work=*/1).Run(2, 2, {1}, 8, absl::Hours(1), 5000);
  world.Pending(10, 1, 1, 8);
  EXPECT_EQ(Victims(world.Choose()), (VictimMap{{10, {2}}}));

  World only_acme(1, 8);
  only_acme.Tenant("acme", 8).Tenant("globex", 8).Run(1, 0, {0}, 8).Pending(10, 1, 1, 8);
  EXPECT_THAT(only_acme.Choose().preemptions, IsEmpty());
}

TEST(FairnessTest, ATenantGivesBackWhatItBorrowsAndAtMostOneJobMore) {
  // acme (quota 8) uses 12: two 4-GPU jobs on node-0, one on node-1 (4 free
  // there). Freeing node-0 would take both of its jobs, the second after acme
  // stopped borrowing; one job on node-1 suffices.
  FairnessResult r = World(2, 8)
                         .Tenant("acme", 8)
                         .Tenant("globex", 8)
                         .Run(1, 0, {0}, 4, absl::Hours(1), /*work=*/1)
                         .Run(2, 0, {0}, 4, absl::Hours(1), /*work=*/1)
                         .Run(3, 0, {1}, 4, absl::Hours(1), /*work=*/9000)
                         .Pending(10, 1, 1, 8)
                         .Choose();
  EXPECT_EQ(Victims(r), (VictimMap{{10, {3}}}));
}

TEST(FairnessTest, AGangVictimFreesEveryNodeItSpans) {
  FairnessResult r = World(2, 8)
                         .Tenant("acme", 0)
                         .Tenant("globex", 16)
                         .Run(1, 0, {0, 1}, 8)
                         .Pending(10, 1, 2, 8)
                         .Choose();
  EXPECT_EQ(Victims(r), (VictimMap{{10, {1}}}));
}

TEST(FairnessTest, NothingIsPreemptedBeforeMinRuntimeAndTheReasonSaysWhen) {
  FairnessResult r = World(1, 8)
                         .Tenant("acme", 0)
                         .Tenant("globex", 8)
                         .Run(1, 0, {0}, 8, /*age=*/absl::Minutes(4))
                         .Pending(10, 1, 1, 8)
                         .Choose();
  EXPECT_THAT(r.preemptions, IsEmpty());
  EXPECT_EQ(r.recheck, kNow + absl::Minutes(6));
  EXPECT_THAT(r.waiting.at(10), HasSubstr("have not run min_runtime yet (the first is eligible "
                                          "in 6m)"));
}

TEST(FairnessTest, GpusAlreadyComingBackAreWaitedForNotPreemptedAgain) {
  FairnessResult r = World(2, 8)
                         .Tenant("acme", 0)
                         .Tenant("globex", 8)
                         .Returning(1, 0, 0, 8)  // preempting for globex already
                         .Run(2, 0, {1}, 8)
                         .Pending(10, 1, 1, 8)
                         .Choose();
  EXPECT_THAT(r.preemptions, IsEmpty());
  EXPECT_THAT(r.waiting.at(10), HasSubstr("waiting for the GPUs that preempted or stopping jobs "
                                          "are giving back"));
}

TEST(FairnessTest, TwoPreemptorsNeverCountTheSameReturningGpus) {
  FairnessResult r = World(3, 8)
                         .Tenant("acme", 0)
                         .Tenant("globex", 16)
                         .Returning(1, 0, 0, 8)
                         .Run(2, 0, {1}, 8)
                         .Run(3, 0, {2}, 8, absl::Hours(1), /*work=*/5)
                         .Pending(10, 1, 1, 8)
                         .Pending(11, 1, 1, 8)
                         .Choose();
  EXPECT_EQ(Victims(r), (VictimMap{{11, {3}}}));  // 10 takes what job 1 gives back
}

TEST(FairnessTest, ATenantsQueueStopsAtItsFirstPreemptorThatCannotBeHelped) {
  // globex's head needs 3 nodes of a 2-node cluster, within its quota; its
  // small job behind does not jump it.
  FairnessResult r = World(2, 8)
                         .Tenant("acme", 0)
                         .Tenant("globex", 24)
                         .Run(1, 0, {0}, 8)
                         .Run(2, 0, {1}, 8)
                         .Pending(10, 1, 3, 8)
                         .Pending(11, 1, 1, 8)
                         .Choose();
  EXPECT_THAT(r.preemptions, IsEmpty());
}

TEST(FairnessTest, AJobBeyondItsTenantsQuotaIsPassedOverForTheNextWithinIt) {
  FairnessResult r = World(2, 8)
                         .Tenant("acme", 0)
                         .Tenant("globex", 8)
                         .Run(1, 0, {0}, 8)
                         .Run(2, 0, {1}, 8)
                         .Pending(10, 1, 2, 8)  // 16 GPUs: beyond globex's quota, it borrows
                         .Pending(11, 1, 1, 8)
                         .Choose();
  EXPECT_THAT(Victims(r), SizeIs(1));
  EXPECT_EQ(r.preemptions[0].preemptor, 11u);
}

// Many passes of the quota scheduler and the fairness policy over one
// cluster, each victim acknowledging at once and requeueing: the tenants
// converge on their quotas with no preemption cycle.
class Simulation {
 public:
  Simulation(int nodes, uint32_t gpus, std::vector<SchedTenant> tenants)
      : nodes_(nodes), gpus_(gpus), tenants_(std::move(tenants)) {}

  void Submit(uint64_t id, uint32_t tenant, uint32_t gpus) {
    SchedJob j{id, 1, id, 1, gpus};
    j.tenant = tenant;
    pending_.push_back(j);
  }

  // One pass: schedule, then preempt; victims leave at once. Returns the
  // victims of this pass.
  std::vector<uint64_t> Pass() {
    now_ += absl::Minutes(15);  // every running job is past min_runtime
    std::vector<SchedNode> nodes;
    std::vector<uint32_t> held(nodes_, 0);
    for (const auto& [id, r] : running_) held[r.node] += r.job.gpus_per_node;
    for (int n = 0; n < nodes_; ++n) {
      SchedNode sn{"node-" + std::to_string(n), gpus_, {}, true};
      for (uint32_t g = held[n]; g < gpus_; ++g) sn.free_gpus.push_back(g);
      nodes.push_back(std::move(sn));
    }
    SchedPolicy policy{true, Tenants()};
    SchedResult result = Schedule(nodes, {}, pending_, now_, policy);
    for (const Placement& p : result.placements) {
      auto it = std::find_if(pending_.begin(), pending_.end(),
                             [&](const SchedJob& j) { return j.id == p.job_id; });
      running_[p.job_id] = {*it, p.nodes[0], now_};
      pending_.erase(it);
      for (uint32_t g : p.gpus[0]) {
        nodes[p.nodes[0]].free_gpus.erase(std::find(nodes[p.nodes[0]].free_gpus.begin(),
                                                    nodes[p.nodes[0]].free_gpus.end(), g));
      }
    }
    std::vector<FairnessJob> live;
    for (const auto& [id, r] : running_) {
      FairnessJob f;
      f.id = id;
      f.tenant = r.job.tenant;
      f.gpus = {{r.node, r.job.gpus_per_node}};
      f.eligible_at = r.start + absl::Minutes(10);
      f.work_since_checkpoint = absl::ToDoubleSeconds(now_ - r.start);
      live.push_back(f);
    }
    FairnessResult fair = ChooseFairnessPreemptions(nodes, live, pending_, Tenants(), now_);
    std::vector<uint64_t> victims;
    for (const FairnessPreemption& p : fair.preemptions) {
      for (uint64_t v : p.victims) {
        victims.push_back(v);
        pending_.push_back(running_.at(v).job);  // requeued, same place in its queue
        running_.erase(v);
      }
    }
    return victims;
  }

  std::map<std::string, uint32_t> InUse() const {
    std::map<std::string, uint32_t> out;
    for (const SchedTenant& t : Tenants()) out[t.name] = t.in_use;
    return out;
  }

 private:
  struct Running {
    SchedJob job;
    uint32_t node;
    absl::Time start;
  };
  std::vector<SchedTenant> Tenants() const {
    std::vector<SchedTenant> t = tenants_;
    for (const auto& [id, r] : running_) t[r.job.tenant].in_use += r.job.gpus_per_node;
    return t;
  }

  int nodes_;
  uint32_t gpus_;
  std::vector<SchedTenant> tenants_;
  std::vector<SchedJob> pending_;
  std::map<uint64_t, Running> running_;
  absl::Time now_ = kNow;
};

TEST(FairnessTest, NoPreemptionCycleOverManyPassesWhileBothTenantsFloodTheQueue) {
  // acme and globex each guaranteed half of 4 x 8 GPUs. acme floods first and
  // borrows everything; globex floods after.
  Simulation sim(4, 8, {{"acme", 16, std::nullopt, 1, 0, 0}, {"globex", 16, std::nullopt, 1, 0, 0}});
  for (uint64_t id = 1; id <= 6; ++id) sim.Submit(id, 0, 8);
  EXPECT_THAT(sim.Pass(), IsEmpty());
  EXPECT_EQ(sim.InUse(), (std::map<std::string, uint32_t>{{"acme", 32}, {"globex", 0}}));
  for (uint64_t id = 101; id <= 106; ++id) sim.Submit(id, 1, 8);
  // globex gets its 16 back: two of acme's borrowed jobs, in one pass.
  EXPECT_THAT(sim.Pass(), SizeIs(2));
  EXPECT_EQ(sim.InUse(), (std::map<std::string, uint32_t>{{"acme", 16}, {"globex", 0}}));
  EXPECT_THAT(sim.Pass(), IsEmpty());
  EXPECT_EQ(sim.InUse(), (std::map<std::string, uint32_t>{{"acme", 16}, {"globex", 16}}));
  for (int pass = 0; pass < 50; ++pass) {
    EXPECT_THAT(sim.Pass(), IsEmpty()) << "pass " << pass;
    EXPECT_EQ(sim.InUse(), (std::map<std::string, uint32_t>{{"acme", 16}, {"globex", 16}}));
  }
}

TEST(FairnessTest, AVictimsRequeuedJobNeverPreemptsBack) {
  // 3 tenants, unequal quotas, small and large jobs: over many passes every
  // preemption moves GPUs to a tenant that stays within its quota, so the
  // number of preemptions is bounded by the GPUs borrowed at the start.
  Simulation sim(4, 8,
                 {{"acme", 8, std::nullopt, 1, 0, 0},
                  {"globex", 16, std::nullopt, 2, 0, 0},
                  {"initech", 8, std::nullopt, 1, 0, 0}});
  for (uint64_t id = 1; id <= 8; ++id) sim.Submit(id, 0, 4);
  EXPECT_THAT(sim.Pass(), IsEmpty());  // acme borrows all 32
  for (uint64_t id = 101; id <= 104; ++id) sim.Submit(id, 1, 8);
  for (uint64_t id = 201; id <= 208; ++id) sim.Submit(id, 2, 2);
  size_t preempted = 0;
  for (int pass = 0; pass < 60; ++pass) preempted += sim.Pass().size();
  EXPECT_EQ(sim.InUse(),
            (std::map<std::string, uint32_t>{{"acme", 8}, {"globex", 16}, {"initech", 8}}));
  EXPECT_EQ(preempted, 6u);  // acme's 24 borrowed GPUs, 4 at a time
}

// ---- through the Cluster -------------------------------------------------

class FairnessClusterTest : public ClusterTest {
 protected:
  // acme (quota 2) and globex (quota 2) over node-a and node-b (2 GPUs each);
  // acme borrows both nodes with two 2-GPU jobs.
  void AcmeBorrowsEverything() {
    config_.heartbeat_timeout = absl::Hours(24);  // the clock jumps by minutes
    config_.policies_configured = true;
    config_.tenant_policies["acme"].quota_gpus = 2;
    config_.tenant_policies["globex"].quota_gpus = 2;
    Report("node-a");
    Report("node-b");
    acme_ = {Submit(Spec(1, 2)), Submit(Spec(1, 2))};
    Schedule();
    ASSERT_EQ(JobById(acme_[0]).state, JobState::kRunning);
    ASSERT_EQ(JobById(acme_[1]).state, JobState::kRunning);
  }
  uint64_t SubmitGlobex() {
    return InTxn([&] { return *cluster_->Submit("globex", Spec(1, 2)); });
  }
  // The acme job being preempted (exactly one).
  uint64_t Preempting() {
    std::vector<uint64_t> out;
    for (uint64_t id : acme_) {
      if (JobById(id).state == JobState::kPreempting) out.push_back(id);
    }
    EXPECT_THAT(out, SizeIs(1));
    return out.empty() ? 0 : out[0];
  }
  std::vector<uint64_t> acme_;
};

TEST_F(FairnessClusterTest, ABorrowerCheckpointsAndRequeuesAndTheGuaranteeRunsInItsPlace) {
  AcmeBorrowsEverything();
  clock_.Advance(absl::Minutes(11));
  const uint64_t theirs = SubmitGlobex();
  Schedule();
  const uint64_t victim = Preempting();
  const Job& v = JobById(victim);
  EXPECT_THAT(v.reason, HasSubstr(fmt::format("preempting for fairness (job {} of tenant globex): "
                                              "checkpoint and exit within 2m", theirs)));
  EXPECT_THAT(v.preempt_why, HasSubstr(fmt::format("fairness: for job {} of tenant globex", theirs)));
  EXPECT_EQ(v.preempt_deadline, clock_.Now() + absl::Minutes(2));
  EXPECT_THAT(JobById(theirs).reason, HasSubstr(fmt::format("preempting borrowers' job {} (tenant "
                                                            "acme) for it", victim)));
  // The notice reaches the victim's node with the grace as deadline.
  const std::string node = v.ranks[0].node;
  protocols::WorkerSync sync = Report(node, Exits(victim, node, {}));
  ASSERT_THAT(sync.notices, SizeIs(2));
  EXPECT_EQ(sync.notices[0].reason, fmt::format("fairness preemption for job {}", theirs));
  EXPECT_EQ(sync.notices[0].deadline_unix_ms, absl::ToUnixMillis(clock_.Now() + absl::Minutes(2)));
  // Another pass during the grace preempts nothing more.
  Do([&] { return cluster_->CheckTimeouts(); });
  Schedule();
  EXPECT_EQ(JobById(acme_[0] == victim ? acme_[1] : acme_[0]).state, JobState::kRunning);
  EXPECT_THAT(JobById(theirs).reason, HasSubstr("waiting for the GPUs"));

  // Both ranks checkpoint and exit 75: requeued, a preemption, not a restart.
  Report(node, Exits(victim, node, {{0, 75}, {1, 75}}));
  EXPECT_EQ(JobById(victim).state, JobState::kPending);
  EXPECT_EQ(JobById(victim).preemptions, 1u);
  EXPECT_EQ(JobById(victim).restarts, 0u);
  EXPECT_THAT(JobById(victim).reason,
              HasSubstr(fmt::format("preempted (fairness preemption for job {})", theirs)));
  Schedule();
  EXPECT_EQ(JobById(theirs).state, JobState::kRunning);
  EXPECT_EQ(JobById(theirs).ranks[0].node, node);
  EXPECT_EQ(JobById(victim).state, JobState::kPending);
  EXPECT_THAT(JobById(victim).reason, HasSubstr("acme uses 2 of its 2-GPU quota and no idle GPUs"));
  // Nothing is preempted back, however long it waits.
  clock_.Advance(absl::Hours(1));
  Do([&] { return cluster_->CheckTimeouts(); });
  Schedule();
  EXPECT_EQ(JobById(theirs).state, JobState::kRunning);

  // The victim's events tell the story.
  auto events = store_->Events(victim);
  ASSERT_TRUE(events.ok());
  std::vector<std::string> kinds;
  for (const protocols::JobEvent& e : *events) kinds.push_back(e.kind);
  EXPECT_THAT(kinds, ElementsAre("submitted", "started", "preempting", "acknowledged", "requeued"));
}

TEST_F(FairnessClusterTest, NoBorrowerIsPreemptedBeforeMinRuntimeThenOneIsWhenItComesOfAge) {
  AcmeBorrowsEverything();
  clock_.Advance(absl::Minutes(4));
  const uint64_t theirs = SubmitGlobex();
  Schedule();
  for (uint64_t id : acme_) EXPECT_EQ(JobById(id).state, JobState::kRunning);
  EXPECT_THAT(JobById(theirs).reason, HasSubstr("have not run min_runtime yet (the first is "
                                                "eligible in 6m)"));
  clock_.Advance(absl::Minutes(5));
  Do([&] { return cluster_->CheckTimeouts(); });
  EXPECT_FALSE(cluster_->NeedsScheduling());
  clock_.Advance(absl::Minutes(1));
  Do([&] { return cluster_->CheckTimeouts(); });
  EXPECT_TRUE(cluster_->NeedsScheduling()) << "min_runtime reached: a pass is due";
  Schedule();
  Preempting();
}

TEST_F(FairnessClusterTest, AVictimKilledAtTheDeadlineIsRequeuedAsAPreemptionNotAFailure) {
  AcmeBorrowsEverything();
  clock_.Advance(absl::Minutes(11));
  SubmitGlobex();
  Schedule();
  const uint64_t victim = Preempting();
  const std::string node = JobById(victim).ranks[0].node;
  clock_.Advance(absl::Minutes(2));
  Do([&] { return cluster_->CheckTimeouts(); });
  Report(node, Exits(victim, node, {{0, 137}, {1, 137}}));
  EXPECT_EQ(JobById(victim).state, JobState::kPending);
  EXPECT_EQ(JobById(victim).preemptions, 1u);
  EXPECT_EQ(JobById(victim).restarts, 0u);
}

TEST_F(FairnessClusterTest, APreemptionForFairnessSurvivesACoordinatorRestart) {
  AcmeBorrowsEverything();
  clock_.Advance(absl::Minutes(11));
  const uint64_t theirs = SubmitGlobex();
  Schedule();
  const uint64_t victim = Preempting();
  Cluster again(*store_, clock_, config_);
  ASSERT_TRUE(again.Recover().ok());
  const Job* v = again.FindJob(victim);
  EXPECT_EQ(v->state, JobState::kPreempting);
  EXPECT_EQ(v->fairness_for, theirs);
  EXPECT_EQ(v->preempt_deadline, JobById(victim).preempt_deadline);
}

// A hostile tenant below its quota submits and cancels in a loop to keep
// a borrower's jobs churning: each borrowed job can be preempted at most
// once per min_runtime, because its next attempt starts the clock again.
TEST_F(FairnessClusterTest, SubmittingAndCancellingPreemptsEachBorrowedJobAtMostOncePerMinRuntime) {
  AcmeBorrowsEverything();
  clock_.Advance(absl::Minutes(11));
  size_t preemptions = 0;
  for (int round = 0; round < 5; ++round) {
    const uint64_t theirs = SubmitGlobex();
    Schedule();
    for (uint64_t id : acme_) {
      if (JobById(id).state != JobState::kPreempting) continue;
      ++preemptions;
      const std::string node = JobById(id).ranks[0].node;
      Report(node, Exits(id, node, {{0, 75}, {1, 75}}));  // it checkpoints and exits
    }
    Do([&] { return cluster_->Cancel(theirs, "globex"); });
    Schedule();  // acme borrows the idle node again
    for (uint64_t id : acme_) EXPECT_EQ(JobById(id).state, JobState::kRunning) << round;
    clock_.Advance(absl::Minutes(1));
  }
  // Within 5 minutes (less than min_runtime) each of acme's jobs was
  // preempted once at most: the first round took one, the second the other
  // (it had run 11 minutes), then both were too young.
  EXPECT_EQ(preemptions, 2u);
  for (uint64_t id : acme_) {
    EXPECT_EQ(JobById(id).preemptions, 1u) << id;
    EXPECT_EQ(JobById(id).restarts, 0u) << id;
  }
}

TEST_F(FairnessClusterTest, TurnedOffNothingIsPreempted) {
  config_.fairness_preemption = false;
  AcmeBorrowsEverything();
  clock_.Advance(absl::Hours(1));
  const uint64_t theirs = SubmitGlobex();
  Schedule();
  for (uint64_t id : acme_) EXPECT_EQ(JobById(id).state, JobState::kRunning);
  EXPECT_EQ(JobById(theirs).state, JobState::kPending);
}

TEST_F(FairnessClusterTest, GpuSecondsAreSplitWithinQuotaAndBorrowed) {
  AcmeBorrowsEverything();  // 2 GPUs within acme's quota, 2 borrowed
  clock_.Advance(absl::Seconds(100));
  protocols::TenantListReply all = cluster_->Tenants("acme");
  ASSERT_THAT(all.tenants, SizeIs(1));
  EXPECT_DOUBLE_EQ(all.tenants[0].gpu_seconds, 400);
  EXPECT_DOUBLE_EQ(all.tenants[0].gpu_seconds_borrowed, 200);
  // The borrowed job ends: its borrowed seconds stay in the account.
  const uint64_t borrowed = JobById(acme_[0]).attempt_borrowed_gpus > 0 ? acme_[0] : acme_[1];
  EXPECT_EQ(JobById(borrowed).attempt_borrowed_gpus, 2u);
  const std::string node = JobById(borrowed).ranks[0].node;
  Report(node, Exits(borrowed, node, {{0, 0}, {1, 0}}));
  clock_.Advance(absl::Seconds(100));
  all = cluster_->Tenants("acme");
  EXPECT_DOUBLE_EQ(all.tenants[0].gpu_seconds, 600);
  EXPECT_DOUBLE_EQ(all.tenants[0].gpu_seconds_borrowed, 200);
}

TEST(FairnessConfigTest, ParsesGraceMinRuntimeAndEnabledAndRefusesBadValuesNamingTheField) {
  auto config = ParseConfig(
      "storage_root: /x\nfairness_preemption: {grace: 30s, min_runtime: 0, enabled: false}\n");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->fairness_grace, absl::Seconds(30));
  EXPECT_EQ(config->fairness_min_runtime, absl::ZeroDuration());
  EXPECT_FALSE(config->fairness_preemption);
  auto defaults = ParseConfig("storage_root: /x\n");
  EXPECT_EQ(defaults->fairness_grace, absl::Minutes(2));
  EXPECT_EQ(defaults->fairness_min_runtime, absl::Minutes(10));
  EXPECT_TRUE(defaults->fairness_preemption);
  for (auto [text, field] : std::vector<std::pair<std::string, std::string>>{
           {"fairness_preemption: 2m", "fairness_preemption: expected {grace"},
           {"fairness_preemption: {grace: soon}", "fairness_preemption.grace"},
           {"fairness_preemption: {grace: 48h}", "fairness_preemption.grace: must be at most 24h"},
           {"fairness_preemption: {min_runtime: -1m}", "fairness_preemption.min_runtime"},
           {"fairness_preemption: {enabled: maybe}", "fairness_preemption.enabled"},
           {"fairness_preemption: {grace: 1m, cooldown: 1m}", "fairness_preemption.cooldown"}}) {
    auto bad = ParseConfig("storage_root: /x\n" + text + "\n");
    EXPECT_FALSE(bad.ok()) << text;
    EXPECT_THAT(bad.status().message(), HasSubstr(field)) << text;
  }
}

}  // namespace
}  // namespace sublet::coordinator

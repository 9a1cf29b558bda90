#include "client/output.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace sublet::client {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

constexpr int64_t kSubmitMs = 1'800'000'000'000;  // 2027-01-15T08:00:00Z
const absl::Time kNow = absl::FromUnixMillis(kSubmitMs) + absl::Minutes(5);

protocols::JobInfo RunningJob() {
  protocols::JobInfo job;
  job.id = 17;
  job.name = "gpt-tiny";
  job.tenant = "acme";
  job.state = "running";
  job.attempt = 2;
  job.restarts = 1;
  job.nodes = {"node-1", "node-2"};
  job.submit_time_unix_ms = kSubmitMs;
  job.start_time_unix_ms = kSubmitMs + 1500;
  job.spec.nodes = 2;
  job.spec.gpus_per_node = 2;
  job.spec.tensor_parallel = 2;
  job.spec.time_limit = absl::Hours(2);
  job.ranks = {{.rank = 0, .node = "node-1", .local_rank = 0, .gpus = {0}, .state = "running"},
               {.rank = 3,
                .node = "node-2",
                .local_rank = 1,
                .gpus = {1},
                .state = "exited",
                .exit_code = 137}};
  job.events = {{.time_unix_ms = kSubmitMs,
                 .kind = "submitted",
                 .who = "acme",
                 .message = "submitted by acme"}};
  return job;
}

protocols::NodeInfo ReadyNode() {
  return {.name = "node-1",
          .state = "ready",
          .gpus = 4,
          .gpus_free = 2,
          .jobs = {17},
          .address = "127.0.0.1",
          .last_heartbeat_unix_ms = kSubmitMs};
}

TEST(JobJsonTest, CarriesEveryRequiredKey) {
  nlohmann::json job = JobToJson(RunningJob(), /*detailed=*/false);
  for (const char* key :
       {"id", "name", "tenant", "state", "reason", "restarts", "preemptions", "attempt", "nodes",
        "last_checkpoint_step", "submit_time", "start_time", "end_time", "gpus_per_node",
        "num_nodes", "priority", "max_restarts", "time_limit"}) {
    EXPECT_TRUE(job.contains(key)) << key;
  }
  EXPECT_FALSE(job.contains("ranks"));
  EXPECT_EQ(job["id"], "17");
  EXPECT_EQ(job["nodes"], nlohmann::json({"node-1", "node-2"}));
  EXPECT_EQ(job["priority"], "normal");
  EXPECT_EQ(job["time_limit"], "2h");
}

TEST(JobJsonTest, CheckpointStepIsNullWhenNoneAndANumberOtherwise) {
  protocols::JobInfo job = RunningJob();
  EXPECT_TRUE(JobToJson(job, false)["last_checkpoint_step"].is_null());
  job.last_checkpoint_step = 400;
  EXPECT_EQ(JobToJson(job, false)["last_checkpoint_step"], 400);
}

TEST(JobJsonTest, TimesAreIso8601AndNullWhenUnset) {
  nlohmann::json job = JobToJson(RunningJob(), false);
  EXPECT_EQ(job["submit_time"], "2027-01-15T08:00:00.000Z");
  EXPECT_EQ(job["start_time"], "2027-01-15T08:00:01.500Z");
  EXPECT_TRUE(job["end_time"].is_null());
}

TEST(JobJsonTest, DetailedJobHasRanksAndEvents) {
  nlohmann::json job = JobToJson(RunningJob(), /*detailed=*/true);
  ASSERT_EQ(job["ranks"].size(), 2u);
  EXPECT_EQ(job["ranks"][1]["node"], "node-2");
  EXPECT_EQ(job["ranks"][1]["exit_code"], 137);
  EXPECT_TRUE(job["ranks"][0]["exit_code"].is_null());
  ASSERT_EQ(job["events"].size(), 1u);
  EXPECT_EQ(job["events"][0]["kind"], "submitted");
  EXPECT_EQ(job["events"][0]["who"], "acme");
}

TEST(NodeJsonTest, CarriesEveryRequiredKey) {
  nlohmann::json node = NodeToJson(ReadyNode());
  EXPECT_EQ(node["name"], "node-1");
  EXPECT_EQ(node["state"], "ready");
  EXPECT_EQ(node["gpus"], 4);
  EXPECT_EQ(node["gpus_free"], 2);
  EXPECT_EQ(node["jobs"], nlohmann::json({"17"}));
  EXPECT_EQ(node["address"], "127.0.0.1");
  EXPECT_EQ(node["last_heartbeat"], "2027-01-15T08:00:00.000Z");
  EXPECT_TRUE(node["reclaim_id"].is_null());
}

// Ids are integers on the wire but decimal strings in JSON, as they were when
// the wire carried text, so scripts reading `-o json` keep working.
TEST(JsonIdsTest, IdsAreDecimalStringsAndNullWhenNone) {
  protocols::JobInfo job = RunningJob();
  job.id = (uint64_t{1} << 63) + 5;
  EXPECT_EQ(JobToJson(job, false)["id"], "9223372036854775813");
  EXPECT_TRUE(JobToJson(job, false)["reclaim_id"].is_null());
  job.reclaim_id = 7;
  EXPECT_EQ(JobToJson(job, false)["reclaim_id"], "7");
  protocols::NodeInfo node = ReadyNode();
  node.jobs = {17, 18};
  node.reclaim_id = 7;
  EXPECT_EQ(NodeToJson(node)["jobs"], nlohmann::json({"17", "18"}));
  EXPECT_EQ(NodeToJson(node)["reclaim_id"], "7");
}

TEST(ErrorJsonTest, NamesTheCanonicalCodeAndMessage) {
  nlohmann::json error = ErrorToJson(absl::NotFoundError("job 9 not found"));
  EXPECT_EQ(error["error"]["code"], "NOT_FOUND");
  EXPECT_EQ(error["error"]["message"], "job 9 not found");
}

TEST(DumpJsonTest, ReplacesInvalidUtf8InsteadOfThrowing) {
  std::string dumped = DumpJson({{"data", std::string("ok\xff")}});
  EXPECT_THAT(dumped, HasSubstr("ok"));
  EXPECT_EQ(dumped.back(), '\n');
}

TEST(FormatAgeTest, PicksACoarseUnit) {
  const absl::Time now = absl::FromUnixMillis(kSubmitMs);
  EXPECT_EQ(FormatAge(kSubmitMs - 45'000, now), "45s");
  EXPECT_EQ(FormatAge(kSubmitMs - 10 * 60'000, now), "10m");
  EXPECT_EQ(FormatAge(kSubmitMs - 5 * 3'600'000LL, now), "5h");
  EXPECT_EQ(FormatAge(kSubmitMs - 3 * 86'400'000LL, now), "3d");
  EXPECT_EQ(FormatAge(0, now), "-");
}

TEST(RenderTableTest, PadsColumnsToTheWidestCell) {
  EXPECT_EQ(RenderTable({"A", "LONG"}, {{"wide-cell", "x"}}),
            "A          LONG\n"
            "wide-cell  x\n");
}

TEST(JobsTableTest, ShowsOneRowPerJobUnderTheHeader) {
  protocols::JobInfo pending = RunningJob();
  pending.id = 18;
  pending.state = "pending";
  pending.nodes.clear();
  pending.reason = "waiting for 4 GPUs";
  pending.gpu_seconds = 30;
  pending.gpu_seconds_lost = 4;
  protocols::JobInfo running = RunningJob();
  running.gpu_seconds = 1200.4;
  std::string table = RenderJobsTable({running, pending}, kNow);
  EXPECT_THAT(table, StartsWith("ID  NAME      TENANT  STATE    NODES          RESTARTS  PREEMPT  "
                                "GPU-S  LOST-GPU-S  AGE  REASON\n"));
  EXPECT_THAT(table, HasSubstr("17  gpt-tiny  acme    running  node-1,node-2  1         0        "
                               "1200   0           5m   -\n"));
  EXPECT_THAT(table, HasSubstr("waiting for 4 GPUs"));
  // Per-tenant totals follow.
  EXPECT_THAT(table, HasSubstr("TENANT  JOBS  GPU-S  LOST-GPU-S\nacme    2     1230   4\n"));
}

TEST(TenantsTableTest, SplitsGpuSecondsWithinQuotaBorrowedAndLost) {
  protocols::TenantListReply reply;
  reply.policies = true;
  reply.pool_gpus = 16;
  protocols::TenantInfo t;
  t.name = "acme";
  t.quota_gpus = 8;
  t.in_use_gpus = 12;
  t.borrowed_gpus = 4;
  t.gpu_seconds = 1000;
  t.gpu_seconds_borrowed = 250;
  t.gpu_seconds_lost = 30;
  t.quota_in_force_gpus = 6;  // the pool shrank below the sum of the quotas
  reply.tenants = {t};
  const std::string table = RenderTenantsTable(reply);
  EXPECT_THAT(table, HasSubstr("GPU-S-IN-QUOTA  GPU-S-BORROWED  GPU-S-LOST\n"));
  EXPECT_THAT(table, HasSubstr("750             250             30\n"));
  EXPECT_THAT(table, HasSubstr("acme    8 (6 in force)"));
  const nlohmann::json json = TenantsToJson(reply);
  EXPECT_EQ(json["tenants"][0]["gpu_seconds_within_quota"], 750.0);
  EXPECT_EQ(json["tenants"][0]["gpu_seconds_borrowed"], 250.0);
  EXPECT_EQ(json["tenants"][0]["gpu_seconds_lost"], 30.0);
  EXPECT_EQ(json["tenants"][0]["quota_in_force_gpus"], 6);
}

TEST(JobsTableTest, TenantTotalsJsonSumsEachTenantInNameOrder) {
  protocols::JobInfo a = RunningJob(), b = RunningJob(), c = RunningJob();
  a.gpu_seconds = 10, a.gpu_seconds_lost = 1;
  b.gpu_seconds = 5.5;
  c.tenant = "beta";
  c.gpu_seconds = 2;
  EXPECT_EQ(TenantTotalsToJson({c, a, b}),
            nlohmann::json::parse(R"([{"tenant":"acme","jobs":2,"gpu_seconds":15.5,"gpu_seconds_lost":1.0},
                                      {"tenant":"beta","jobs":1,"gpu_seconds":2.0,"gpu_seconds_lost":0.0}])"));
  EXPECT_EQ(TenantTotalsToJson({}), nlohmann::json::array());
}

TEST(ReclaimOutputTest, DetailShowsEveryNodeAndJobWithItsCheckpoint) {
  protocols::ReclaimInfo r;
  r.id = 3;
  r.who = "infra";
  r.reason = "eval";
  r.state = "reclaimed";
  r.created_unix_ms = absl::ToUnixMillis(kNow) - 5000;
  r.deadline_unix_ms = absl::ToUnixMillis(kNow) + 55000;
  r.reclaimed_unix_ms = absl::ToUnixMillis(kNow) - 2500;
  r.nodes = {{"node-2", "reclaimed"}};
  r.jobs = {{17, "acme", "acknowledged", "runs on node-2", 400, 1.5}};
  r.warnings = {"job 18: too short"};
  std::string text = RenderReclaimDetail(r, kNow);
  EXPECT_THAT(text, HasSubstr("Reclaim 3: reclaimed, by infra (eval)"));
  EXPECT_THAT(text, HasSubstr("Reclaimed: after 2.50s"));
  EXPECT_THAT(text, HasSubstr("node-2  reclaimed"));
  EXPECT_THAT(text, HasSubstr("17   acme    acknowledged  400         1.5s      runs on node-2"));
  EXPECT_THAT(text, HasSubstr("warning: job 18: too short"));
  nlohmann::json j = ReclaimToJson(r);
  EXPECT_EQ(j["seconds_to_reclaim"], 2.5);
  EXPECT_EQ(j["id"], "3");
  EXPECT_EQ(j["jobs"][0]["job_id"], "17");
  EXPECT_EQ(j["jobs"][0]["checkpoint_step"], 400);
  EXPECT_EQ(j["nodes"][0]["state"], "reclaimed");
}

TEST(NodesTableTest, ShowsGpusJobsLastSeenAndIsolation) {
  protocols::NodeInfo unconfined = ReadyNode();
  unconfined.name = "node-2";
  unconfined.isolation = "none";
  protocols::NodeInfo sandboxed = ReadyNode();
  sandboxed.isolation = "sandbox";
  std::string table = RenderNodesTable({sandboxed, unconfined}, kNow);
  EXPECT_THAT(table,
              StartsWith("NAME    STATE  GPUS  FREE  JOBS  ADDRESS    LAST-SEEN  ISOLATION\n"));
  EXPECT_THAT(table, HasSubstr("node-1  ready  4     2     17    127.0.0.1  5m ago     sandbox\n"));
  EXPECT_THAT(table, HasSubstr("node-2  ready  4     2     17    127.0.0.1  5m ago     none\n"));
  EXPECT_EQ(NodeToJson(unconfined)["isolation"], "none");
  EXPECT_TRUE(NodeToJson(ReadyNode())["isolation"].is_null());
}

TEST(JobDetailTest, ShowsSpecPlacementCheckpointAndEvents) {
  protocols::JobInfo job = RunningJob();
  job.last_checkpoint_step = 400;
  std::string detail = RenderJobDetail(job, kNow);
  EXPECT_THAT(detail, HasSubstr("2 nodes x 2 GPUs, tensor 2, priority normal"));
  EXPECT_THAT(detail, HasSubstr("step 400"));
  EXPECT_THAT(detail, HasSubstr("RANK  NODE    LOCAL_RANK  GPUS  STATE    EXIT_CODE"));
  EXPECT_THAT(detail, HasSubstr("3     node-2  1           1     exited   137"));
  EXPECT_THAT(detail, HasSubstr("submitted by acme"));
}

TEST(JobDetailTest, SaysWhenNothingIsPlacedYet) {
  protocols::JobInfo job = RunningJob();
  job.ranks.clear();
  EXPECT_THAT(RenderJobDetail(job, kNow), HasSubstr("(not placed)"));
}

}  // namespace
}  // namespace sublet::client

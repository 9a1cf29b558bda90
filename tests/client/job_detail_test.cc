// `sublet show`'s text (RenderJobDetail) and the jobs table: attempts and
// their starts, the spec's settings, a pending job's old placement, counts.
#include <gmock/gmock.h>
#include <cmath>
#include <gtest/gtest.h>

#include "client/output.h"

namespace sublet::client {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

constexpr int64_t kSubmitMs = 1'800'000'000'000;  // 2027-01-15T08:00:00Z
const absl::Time kNow = absl::FromUnixMillis(kSubmitMs) + absl::Minutes(10);

protocols::JobEvent Event(int64_t ms, std::string kind, std::string message) {
  return {.time_unix_ms = ms,
          .kind = std::move(kind),
          .who = "scheduler",
          .message = std::move(message)};
}

// The value of the "Label:   value" line of `detail`; "(none)" if none.
std::string Field(const std::string& detail, const std::string& label) {
  const size_t at = detail.find("\n" + label + " ");
  if (at == std::string::npos) return "(none)";
  const size_t start = detail.find_first_not_of(' ', at + 1 + label.size());
  return detail.substr(start, detail.find('\n', start) - start);
}

// Started, preempted by a reclaim, and resumed on one node.
protocols::JobInfo ResumedJob() {
  protocols::JobInfo job;
  job.id = 7;
  job.name = "gpt-tiny";
  job.tenant = "acme";
  job.state = "running";
  job.attempt = 2;
  job.preemptions = 1;
  job.nodes = {"node-1"};
  job.submit_time_unix_ms = kSubmitMs;
  job.start_time_unix_ms = kSubmitMs + 120'000;
  job.spec.nodes = 2;
  job.spec.gpus_per_node = 2;
  job.spec.checkpoint_every_steps = 50;
  job.spec.checkpoint_keep = 3;
  job.spec.env = {{"WANDB_API_KEY", "secret-value"}, {"SUBLET_LOG_LEVEL", "info"}};
  job.spec.progress_timeout = absl::Minutes(10);
  job.spec.preemption_signal = "SIGTERM";
  job.ranks = {{.rank = 0, .node = "node-1", .gpus = {0}, .state = "running"},
               {.rank = 1, .node = "node-1", .local_rank = 1, .gpus = {1}, .state = "running"}};
  job.events = {Event(kSubmitMs, "submitted", "2 nodes x 2 GPUs, priority normal"),
                Event(kSubmitMs + 1'000, "started", "attempt 1 on node-1,node-2 (4 ranks)"),
                Event(kSubmitMs + 60'000, "preempting", "reclaim 1 by infra"),
                Event(kSubmitMs + 120'000, "started",
                      "attempt 2 on node-1 (2 ranks); elastic: 1 of 2 nodes")};
  return job;
}

TEST(JobDetailTest, ShowsTheFirstStartAndEachAttemptsStart) {
  const std::string detail = RenderJobDetail(ResumedJob(), kNow);
  EXPECT_EQ(Field(detail, "First start:"), "2027-01-15T08:00:01.000Z (9m ago)");
  EXPECT_THAT(detail, HasSubstr("ATTEMPT  STARTED                            ON\n"
                                "1        2027-01-15T08:00:01.000Z (9m ago)  "
                                "node-1,node-2 (4 ranks)\n"
                                "2        2027-01-15T08:02:00.000Z (8m ago)  "
                                "node-1 (2 ranks); elastic: 1 of 2 nodes\n"));
}

TEST(JobDetailTest, ShowsCheckpointingEnvKeysProgressTimeoutAndPreemptionSignal) {
  const std::string detail = RenderJobDetail(ResumedJob(), kNow);
  EXPECT_EQ(Field(detail, "Checkpointing:"), "every 50 steps, keeping the newest 3 checkpoints");
  EXPECT_EQ(Field(detail, "Env:"), "SUBLET_LOG_LEVEL, WANDB_API_KEY (values not shown)");
  EXPECT_THAT(detail, Not(HasSubstr("secret-value")));
  EXPECT_EQ(Field(detail, "Progress timeout:"), "10m");
  EXPECT_EQ(Field(detail, "Preemption:"), "notice by SIGTERM");
}

TEST(JobDetailTest, JsonCarriesTheSameSettingsWithoutEnvValues) {
  nlohmann::json job = JobToJson(ResumedJob(), /*detailed=*/true);
  EXPECT_EQ(job["checkpoint"], nlohmann::json({{"every_steps", 50}, {"keep", 3}}));
  EXPECT_EQ(job["env_keys"], nlohmann::json({"SUBLET_LOG_LEVEL", "WANDB_API_KEY"}));
  EXPECT_EQ(job["progress_timeout"], "10m");
  EXPECT_EQ(job["preemption_signal"], "SIGTERM");
  EXPECT_EQ(job.dump().find("secret-value"), std::string::npos);
  protocols::JobInfo plain = ResumedJob();
  plain.spec.progress_timeout = absl::ZeroDuration();
  plain.spec.preemption_signal.clear();
  EXPECT_TRUE(JobToJson(plain, false)["progress_timeout"].is_null());
  EXPECT_TRUE(JobToJson(plain, false)["preemption_signal"].is_null());
}

TEST(JobDetailTest, LeavesOutProgressTimeoutAndSignalWhenNotSet) {
  protocols::JobInfo job = ResumedJob();
  job.spec.progress_timeout = absl::ZeroDuration();
  job.spec.preemption_signal.clear();
  job.spec.env.clear();
  job.spec.checkpoint_every_steps = 0;
  const std::string detail = RenderJobDetail(job, kNow);
  EXPECT_EQ(Field(detail, "Progress timeout:"), "(none)");
  EXPECT_EQ(Field(detail, "Preemption:"), "(none)");
  EXPECT_EQ(Field(detail, "Env:"), "-");
  EXPECT_EQ(Field(detail, "Checkpointing:"),
            "at the trainer's default interval, keeping the newest 3 checkpoints");
}

TEST(JobDetailTest, APendingJobDoesNotShowItsLastAttemptsNodesAsCurrent) {
  protocols::JobInfo job = ResumedJob();
  job.state = "pending";
  for (auto& rank : job.ranks) rank.state = "exited";
  const std::string detail = RenderJobDetail(job, kNow);
  EXPECT_EQ(Field(detail, "Nodes:"), "- (not placed; attempt 2 ran on node-1)");
  EXPECT_THAT(detail, HasSubstr("Last placement (attempt 2, ended):\n"));
  EXPECT_THAT(detail, Not(HasSubstr("\nPlacement:\n")));
  EXPECT_THAT(RenderJobsTable({job}, kNow), Not(HasSubstr("node-1")));
}

TEST(JobDetailTest, ANeverStartedJobSaysSo) {
  protocols::JobInfo job = ResumedJob();
  job.state = "pending";
  job.attempt = 0;
  job.nodes.clear();
  job.ranks.clear();
  job.start_time_unix_ms = 0;
  job.events.resize(1);
  const std::string detail = RenderJobDetail(job, kNow);
  EXPECT_EQ(Field(detail, "First start:"), "-");
  EXPECT_THAT(detail, HasSubstr("Attempts:\n  (not started)\n"));
  EXPECT_EQ(Field(detail, "Nodes:"), "- (not placed)");
}

TEST(JobDetailTest, CountsOfOneAreSingular) {
  protocols::JobInfo job = ResumedJob();
  job.spec.nodes = 1;
  job.spec.gpus_per_node = 1;
  job.spec.checkpoint_every_steps = 1;
  job.spec.checkpoint_keep = 1;
  job.restarts = 1;
  const std::string detail = RenderJobDetail(job, kNow);
  EXPECT_THAT(Field(detail, "Spec:"), ::testing::StartsWith("1 node x 1 GPU, tensor"));
  EXPECT_EQ(Field(detail, "Checkpointing:"), "every 1 step, keeping the newest 1 checkpoint");
  EXPECT_EQ(Field(detail, "Attempt:"), "2 (1 restart, 1 preemption)");
}

TEST(AuditOutputTest, TableAndJsonCarryTimeWhoActionDetail) {
  protocols::AuditEntry e{kSubmitMs, "worker:node-1", "registration_refused", "claims node-1"};
  EXPECT_EQ(RenderAuditTable({e}),
            "TIME                      WHO            ACTION                DETAIL\n"
            "2027-01-15T08:00:00.000Z  worker:node-1  registration_refused  claims node-1\n");
  EXPECT_EQ(AuditEntryToJson(e)["who"], "worker:node-1");
}

TEST(JobDetailTest, AStepReportedWithoutALossOrRateShowsNeither) {
  protocols::JobInfo job = ResumedJob();
  job.progress = {.step = 120, .loss = std::nan(""), .tokens_per_s = 0,
                  .time_unix_ms = kSubmitMs + 540'000};
  EXPECT_EQ(Field(RenderJobDetail(job, kNow), "Progress:"),
            "step 120 (2027-01-15T08:09:00.000Z (60s ago))");
  EXPECT_TRUE(JobToJson(job, false)["progress"]["loss"].is_null());
  job.progress.loss = 2.5;
  job.progress.tokens_per_s = 1000;
  EXPECT_EQ(Field(RenderJobDetail(job, kNow), "Progress:"),
            "step 120, loss 2.5, 1000 tokens/s (2027-01-15T08:09:00.000Z (60s ago))");
  EXPECT_EQ(JobToJson(job, false)["progress"]["loss"], 2.5);
}

}  // namespace
}  // namespace sublet::client

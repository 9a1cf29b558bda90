// `sublet submit --array/--depends-on`, `sublet jobs --array` and `sublet
// cancel --array` against a fake coordinator: what is sent, what is printed,
// and bad flags refused (exit 2) before anything is sent.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <optional>
#include <set>

#include "tests/client/cli_fixture.h"

namespace sublet::client::cli {
namespace {

using protocols::Body;
using protocols::DependencyWhen;
using protocols::Envelope;
using testing::FakeCoordinator;
using ::testing::HasSubstr;

std::optional<protocols::JobSpec> SubmittedSpec(const FakeCoordinator& fake) {
  for (const Envelope& e : fake.requests()) {
    if (auto* submit = std::get_if<protocols::SubmitJobRequest>(&e.body)) return submit->spec;
  }
  return std::nullopt;
}

protocols::JobInfo Task(uint64_t id, uint64_t array_id, uint32_t index, std::string state) {
  protocols::JobInfo job;
  job.id = id;
  job.name = "sweep";
  job.tenant = "acme";
  job.state = std::move(state);
  job.array_id = array_id;
  job.array_index = index;
  job.array_size = 3;
  job.spec.array = "0-2%2";
  return job;
}

// Array 10 (tasks 10, 11, 12) and a lone job 13.
Body Arrays(const Envelope& request) {
  if (auto* cancel = std::get_if<protocols::CancelJobRequest>(&request.body)) {
    protocols::JobInfo job = Task(cancel->job_id, 10, 0, "cancelled");
    return protocols::JobReply{job};
  }
  if (std::holds_alternative<protocols::SubmitJobRequest>(request.body)) {
    return protocols::SubmitJobReply{10, 3};
  }
  protocols::JobInfo lone;
  lone.id = 13;
  lone.name = "sweep";
  lone.state = "pending";
  return protocols::JobListReply{{Task(10, 10, 0, "running"), Task(11, 10, 1, "pending"),
                                  Task(12, 10, 2, "succeeded"), lone}};
}

TEST_F(CliTest, SubmitArraySendsTheArrayAndPrintsTheArrayIdThenItsTasks) {
  FakeCoordinator fake(Arrays);
  EXPECT_EQ(RunAgainst(fake, {"submit", "--array", "0-2%2", WriteFile("s.yaml", kHelloSpec)}), 0);
  ASSERT_TRUE(SubmittedSpec(fake).has_value());
  EXPECT_EQ(SubmittedSpec(fake)->array, "0-2%2");
  EXPECT_EQ(out_.str(), "10\n");
  EXPECT_EQ(err_.str(), "array job 10: 3 tasks, jobs 10-12 (array: 0-2%2)\n");
}

TEST_F(CliTest, SubmitArrayInJsonModeListsEveryTaskId) {
  FakeCoordinator fake(Arrays);
  EXPECT_EQ(RunAgainst(fake, {"-o", "json", "submit", "--array", "0-2%2",
                              WriteFile("s.yaml", kHelloSpec)}),
            0);
  const nlohmann::json doc = nlohmann::json::parse(out_.str());
  EXPECT_EQ(doc["id"], "10");
  EXPECT_EQ(doc["array"]["size"], 3);
  EXPECT_EQ(doc["array"]["job_ids"], nlohmann::json({"10", "11", "12"}));
}

TEST_F(CliTest, SubmitDependsOnAppendsToTheSpecsList) {
  FakeCoordinator fake(Arrays);
  const std::string spec = std::string(kHelloSpec) + "depends_on: [{job: 3}]\n";
  EXPECT_EQ(RunAgainst(fake, {"submit", "--depends-on", "5:any,6:failed", "--depends-on", "7",
                              WriteFile("s.yaml", spec)}),
            0);
  ASSERT_TRUE(SubmittedSpec(fake).has_value());
  const std::vector<protocols::Dependency> want = {{3, DependencyWhen::kSucceeded},
                                                   {5, DependencyWhen::kAny},
                                                   {6, DependencyWhen::kFailed},
                                                   {7, DependencyWhen::kSucceeded}};
  EXPECT_EQ(SubmittedSpec(fake)->depends_on, want);
}

TEST_F(CliTest, BadArrayOrDependsOnFlagsExitTwoBeforeContactingTheCoordinator) {
  FakeCoordinator fake(Arrays);
  const std::string spec = WriteFile("s.yaml", kHelloSpec);
  for (const std::vector<std::string>& flags :
       std::vector<std::vector<std::string>>{{"--array", "5-1"},
                                             {"--array", "0-99%0"},
                                             {"--array", "0-100000"},
                                             {"--array", "a-b"},
                                             {"--depends-on", "x"},
                                             {"--depends-on", "0"},
                                             {"--depends-on", "4:afterok"},
                                             {"--depends-on", "4,4"}}) {
    std::vector<std::string> args = {"submit"};
    args.insert(args.end(), flags.begin(), flags.end());
    args.push_back(spec);
    EXPECT_EQ(RunAgainst(fake, args), 2) << flags[0] << " " << flags[1];
    EXPECT_THAT(err_.str(), HasSubstr(flags[0] == "--array" ? "array" : "depends")) << err_.str();
  }
  EXPECT_TRUE(fake.requests().empty());
}

TEST_F(CliTest, JobsArrayFilterListsOnlyThatArraysTasksWithTheirIndex) {
  FakeCoordinator fake(Arrays);
  EXPECT_EQ(RunAgainst(fake, {"jobs", "--array", "10"}), 0);
  EXPECT_THAT(out_.str(), HasSubstr("sweep[1]"));
  EXPECT_THAT(out_.str(), ::testing::Not(HasSubstr(" 13 ")));
  EXPECT_EQ(RunAgainst(fake, {"-o", "json", "jobs", "--array", "10"}), 0);
  const nlohmann::json doc = nlohmann::json::parse(out_.str());
  ASSERT_EQ(doc["jobs"].size(), 3u);
  EXPECT_EQ(doc["jobs"][1]["array"]["index"], 1);
  EXPECT_EQ(doc["jobs"][1]["array"]["id"], "10");
}

TEST_F(CliTest, CancelArrayCancelsEveryUnfinishedTaskAndNothingElse) {
  FakeCoordinator fake(Arrays);
  EXPECT_EQ(RunAgainst(fake, {"cancel", "--array", "10"}), 0);
  std::set<uint64_t> cancelled;
  for (const Envelope& e : fake.requests()) {
    if (auto* c = std::get_if<protocols::CancelJobRequest>(&e.body)) cancelled.insert(c->job_id);
  }
  EXPECT_EQ(cancelled, (std::set<uint64_t>{10, 11}));
  EXPECT_EQ(RunAgainst(fake, {"cancel", "--array", "99"}), 3);
  EXPECT_THAT(err_.str(), HasSubstr("no unfinished job is a task of array job 99"));
  EXPECT_EQ(RunAgainst(fake, {"cancel", "10", "--array", "10"}), 2);
}

}  // namespace
}  // namespace sublet::client::cli

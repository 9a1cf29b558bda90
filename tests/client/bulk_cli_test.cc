// `sublet jobs --state/--name` and `sublet cancel --name` against a fake
// coordinator: the filters, the names of bad input, one cancel per match.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <mutex>
#include <set>

#include "tests/client/cli_fixture.h"

namespace sublet::client::cli {
namespace {

using protocols::Body;
using protocols::Envelope;
using testing::FakeCoordinator;
using ::testing::HasSubstr;
using ::testing::UnorderedElementsAre;

protocols::JobInfo Job(uint64_t id, std::string name, std::string state) {
  protocols::JobInfo job;
  job.id = id;
  job.name = std::move(name);
  job.tenant = "acme";
  job.state = std::move(state);
  return job;
}

// A coordinator holding a sweep of jobs; cancels are answered as done.
Body Sweep(const Envelope& request) {
  if (auto* cancel = std::get_if<protocols::CancelJobRequest>(&request.body)) {
    return protocols::JobReply{Job(cancel->job_id, "cancelled-one", "cancelled")};
  }
  return protocols::JobListReply{{Job(1, "sweep-a", "pending"), Job(2, "sweep-b", "running"),
                                  Job(3, "sweep-c", "succeeded"), Job(4, "other", "running"),
                                  Job(5, "sweep-d", "preempting")}};
}

std::set<uint64_t> CancelledIds(const FakeCoordinator& fake) {
  std::set<uint64_t> ids;
  for (const Envelope& e : fake.requests()) {
    if (auto* cancel = std::get_if<protocols::CancelJobRequest>(&e.body))
      ids.insert(cancel->job_id);
  }
  return ids;
}

std::set<std::string> ListedIds(const std::string& json_out) {
  const nlohmann::json doc = nlohmann::json::parse(json_out);
  std::set<std::string> ids;
  for (const auto& job : doc["jobs"]) ids.insert(job["id"].get<std::string>());
  return ids;
}

TEST_F(CliTest, JobsStateFilterTakesACommaListAndRepeats) {
  FakeCoordinator fake(Sweep);
  EXPECT_EQ(RunAgainst(fake, {"-o", "json", "jobs", "--state", "pending,succeeded"}), 0);
  EXPECT_EQ(ListedIds(out_.str()), (std::set<std::string>{"1", "3"}));
  EXPECT_EQ(RunAgainst(fake, {"-o", "json", "jobs", "--state", "running", "--state", "pending"}),
            0);
  EXPECT_EQ(ListedIds(out_.str()), (std::set<std::string>{"1", "2", "4"}));
}

TEST_F(CliTest, JobsNameFilterIsAShellGlobCombinedWithState) {
  FakeCoordinator fake(Sweep);
  EXPECT_EQ(RunAgainst(fake, {"-o", "json", "jobs", "--name", "sweep-*", "--state", "running"}), 0);
  EXPECT_EQ(ListedIds(out_.str()), (std::set<std::string>{"2"}));
  EXPECT_EQ(RunAgainst(fake, {"jobs", "--name", "sweep-[ab]"}), 0);
  EXPECT_THAT(out_.str(), HasSubstr("sweep-a"));
  EXPECT_THAT(out_.str(), ::testing::Not(HasSubstr("sweep-c")));
  EXPECT_THAT(out_.str(), ::testing::Not(HasSubstr("other")));
}

TEST_F(CliTest, JobsWithAnUnknownStateExitsTwoNamingItBeforeAsking) {
  FakeCoordinator fake(Sweep);
  EXPECT_EQ(RunAgainst(fake, {"jobs", "--state", "pending,runing"}), 2);
  EXPECT_THAT(err_.str(), HasSubstr("--state: 'runing' is not a job state"));
  EXPECT_TRUE(fake.requests().empty());
}

TEST_F(CliTest, CancelByNameCancelsEveryUnfinishedMatchAndPrintsEach) {
  FakeCoordinator fake(Sweep);
  EXPECT_EQ(RunAgainst(fake, {"cancel", "--name", "sweep-*"}), 0);
  EXPECT_THAT(CancelledIds(fake), UnorderedElementsAre(1, 2, 5)) << "not 3 (ended), not 4";
  EXPECT_THAT(out_.str(), HasSubstr("job 1: cancelled\n"));
  EXPECT_THAT(out_.str(), HasSubstr("job 2: cancelled\n"));
  EXPECT_THAT(out_.str(), HasSubstr("job 5: cancelled\n"));
}

TEST_F(CliTest, CancelByNameMatchingNothingExitsNotFoundSayingSo) {
  FakeCoordinator fake(Sweep);
  EXPECT_EQ(RunAgainst(fake, {"cancel", "--name", "nothing-*"}), 3);
  EXPECT_EQ(err_.str(), "sublet: no unfinished job has a name matching --name 'nothing-*'\n");
  EXPECT_TRUE(CancelledIds(fake).empty());
}

TEST_F(CliTest, CancelByNameSkipsAJobThatEndedMeanwhile) {
  FakeCoordinator fake([](const Envelope& request) -> Body {
    if (auto* cancel = std::get_if<protocols::CancelJobRequest>(&request.body);
        cancel && cancel->job_id == 1) {
      return protocols::ErrorReply{static_cast<uint32_t>(absl::StatusCode::kFailedPrecondition),
                                   "job 1 already ended"};
    }
    return Sweep(request);
  });
  EXPECT_EQ(RunAgainst(fake, {"cancel", "--name", "sweep-*"}), 0);
  EXPECT_THAT(err_.str(), HasSubstr("job 1: job 1 already ended"));
  EXPECT_THAT(out_.str(), HasSubstr("job 2: cancelled"));
}

TEST_F(CliTest, CancelNeedsExactlyOneOfJobAndName) {
  FakeCoordinator fake(Sweep);
  EXPECT_EQ(RunAgainst(fake, {"cancel"}), 2);
  EXPECT_EQ(RunAgainst(fake, {"cancel", "17", "--name", "x*"}), 2);
  EXPECT_THAT(err_.str(), HasSubstr("exactly one"));
  EXPECT_TRUE(fake.requests().empty());
}

}  // namespace
}  // namespace sublet::client::cli

// `sublet logs --all-ranks` and `sublet logs -f` against a fake coordinator:
// rank prefixes, whole lines when ranks interleave, and a follower that
// waits out an unreachable coordinator or node.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>

#include "tests/client/cli_fixture.h"

namespace sublet::client::cli {
namespace {

using protocols::Body;
using protocols::Envelope;
using testing::FakeCoordinator;
using ::testing::HasSubstr;

Body JobWithRanks(const std::string& state, uint32_t ranks) {
  protocols::JobInfo job;
  job.id = 17;
  job.name = "hello";
  job.tenant = "acme";
  job.state = state;
  job.attempt = 1;
  for (uint32_t r = 0; r < ranks; ++r) job.ranks.push_back({.rank = r, .node = "node-a"});
  return protocols::JobReply{job};
}

Body Unavailable(const std::string& message) {
  return protocols::ErrorReply{static_cast<uint32_t>(absl::StatusCode::kUnavailable), message};
}

TEST_F(CliTest, LogsAllRanksPrintsEachRankInTurnWithAPrefixOnEveryLine) {
  FakeCoordinator fake([](const Envelope& request) -> Body {
    if (std::holds_alternative<protocols::GetJobRequest>(request.body)) {
      return JobWithRanks("succeeded", 2);
    }
    const auto& read = std::get<protocols::ReadLogsRequest>(request.body);
    if (read.rank == 0) return protocols::LogsReply{"one\ntwo", 7, true};  // no final newline
    return protocols::LogsReply{"three\n", 6, true};
  });
  EXPECT_EQ(RunAgainst(fake, {"logs", "17", "--all-ranks"}), 0);
  EXPECT_EQ(out_.str(), "[rank 0] one\n[rank 0] two\n[rank 1] three\n");
}

TEST_F(CliTest, LogsAllRanksInJsonModeGivesEachRanksData) {
  FakeCoordinator fake([](const Envelope& request) -> Body {
    if (std::holds_alternative<protocols::GetJobRequest>(request.body)) {
      return JobWithRanks("succeeded", 2);
    }
    const auto& read = std::get<protocols::ReadLogsRequest>(request.body);
    return protocols::LogsReply{"rank " + std::to_string(read.rank) + "\n", 7, true};
  });
  EXPECT_EQ(RunAgainst(fake, {"-o", "json", "logs", "17", "--all-ranks"}), 0);
  nlohmann::json doc = nlohmann::json::parse(out_.str());
  ASSERT_EQ(doc["ranks"].size(), 2u);
  EXPECT_EQ(doc["ranks"][1], nlohmann::json({{"rank", 1}, {"data", "rank 1\n"}}));
}

TEST_F(CliTest, LogsAllRanksAndRankTogetherExitTwo) {
  EXPECT_EQ(Run({"logs", "17", "--all-ranks", "--rank", "1"}), 2);
}

// Rank 0 writes "hello\n" in two chunks, the second after rank 1's line:
// followed together, the lines still come out whole.
TEST_F(CliTest, LogsFollowAllRanksInterleavesWholeLines) {
  std::atomic<int> gets{0}, tail_reads{0};
  FakeCoordinator fake([&](const Envelope& request) -> Body {
    if (std::holds_alternative<protocols::GetJobRequest>(request.body)) {
      return JobWithRanks(++gets >= 3 ? "succeeded" : "running", 2);
    }
    const auto& read = std::get<protocols::ReadLogsRequest>(request.body);
    if (read.rank == 1) return protocols::LogsReply{read.offset == 0 ? "world\n" : "", 6, true};
    if (read.offset == 0) return protocols::LogsReply{"hel", 3, false};
    if (++tail_reads == 1) return protocols::LogsReply{"", 3, false};  // the rest comes later
    return protocols::LogsReply{"lo\n", 6, true};
  });
  EXPECT_EQ(RunAgainst(fake, {"logs", "17", "--all-ranks", "-f"}), 0);
  EXPECT_EQ(out_.str(), "[rank 1] world\n[rank 0] hello\n");
}

// The job goes on while the coordinator restarts and the node reconnects:
// the follower says so once, retries, and prints what came meanwhile.
TEST_F(CliTest, LogsFollowWaitsOutAnUnreachableCoordinatorAndNode) {
  std::atomic<int> gets{0}, tail_reads{0};
  FakeCoordinator fake([&](const Envelope& request) -> Body {
    if (auto* read = std::get_if<protocols::ReadLogsRequest>(&request.body)) {
      if (read->offset == 0) return protocols::LogsReply{"before\n", 7, false};
      switch (++tail_reads) {
        case 1:  // nothing new yet
          return protocols::LogsReply{"", 7, false};
        case 2:  // the coordinator is back, the node not yet
          return Unavailable("node node-a is not connected; its logs cannot be read now");
        default:
          return protocols::LogsReply{"after\n", 13, true};
      }
    }
    const int get = ++gets;
    if (get == 2 || get == 3) return Unavailable("cannot reach coordinator at tcp://x");
    return JobWithRanks(get < 6 ? "running" : "succeeded", 1);
  });
  EXPECT_EQ(RunAgainst(fake, {"logs", "17", "-f"}), 0) << err_.str();
  EXPECT_EQ(out_.str(), "before\nafter\n");
  const std::string err = err_.str();
  EXPECT_THAT(err, HasSubstr("coordinator unreachable, retrying..."));
  EXPECT_EQ(err.find("retrying"), err.rfind("retrying")) << "one notice for the outage: " << err;
}

TEST_F(CliTest, LogsFollowOfAnEndedJobWhoseNodeStaysUnreachableExitsFive) {
  FakeCoordinator fake([](const Envelope& request) -> Body {
    if (std::holds_alternative<protocols::GetJobRequest>(request.body)) {
      return JobWithRanks("failed", 1);
    }
    return Unavailable("node node-a is not connected; its logs cannot be read now");
  });
  EXPECT_EQ(RunAgainst(fake, {"logs", "17", "-f"}), 5);
  EXPECT_THAT(err_.str(), HasSubstr("node node-a is not connected"));
}

TEST_F(CliTest, LogsFollowStopsAtANonTransientError) {
  FakeCoordinator fake([](const Envelope&) -> Body {
    return protocols::ErrorReply{static_cast<uint32_t>(absl::StatusCode::kNotFound),
                                 "job 17 not found"};
  });
  EXPECT_EQ(RunAgainst(fake, {"logs", "17", "-f"}), 3);
  EXPECT_EQ(err_.str(), "sublet: job 17 not found\n");
}

}  // namespace
}  // namespace sublet::client::cli

// The `sublet` command line end to end against a fake coordinator: argument
// errors, exit codes, and what lands on stdout and stderr.
#include "client/cli/cli.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <tuple>
#include <vector>

#include "tests/client/cli_fixture.h"

namespace sublet::client::cli {
namespace {

using protocols::Body;
using protocols::Envelope;
using testing::FakeCoordinator;
using ::testing::HasSubstr;

TEST_F(CliTest, HelpExitsZeroAndDescribesTheCommand) {
  EXPECT_EQ(Run({"submit", "--help"}), 0);
  EXPECT_THAT(out_.str(), HasSubstr("--wait"));
}

TEST_F(CliTest, UnknownFlagExitsTwoNamingTheFlag) {
  EXPECT_EQ(Run({"jobs", "--bogus"}), 2);
  EXPECT_THAT(err_.str(), HasSubstr("--bogus"));
}

TEST_F(CliTest, MissingCommandExitsTwo) { EXPECT_EQ(Run({}), 2); }

TEST_F(CliTest, BadOutputFormatExitsTwo) {
  EXPECT_EQ(Run({"-o", "yaml", "jobs"}), 2);
  EXPECT_THAT(err_.str(), HasSubstr("--output"));
}

TEST_F(CliTest, ParseErrorInJsonModeIsAJsonDocumentOnStdout) {
  EXPECT_EQ(Run({"-o", "json", "logs"}), 2);
  nlohmann::json error = nlohmann::json::parse(out_.str());
  EXPECT_EQ(error["error"]["code"], "INVALID_ARGUMENT");
}

TEST_F(CliTest, MissingSpecFileExitsTwoNamingThePath) {
  const std::string path = dir_ + "/absent.yaml";
  EXPECT_EQ(Run({"submit", path}), 2);
  EXPECT_THAT(err_.str(), HasSubstr("sublet: " + path));
}

TEST_F(CliTest, InvalidSpecExitsTwoNamingFileAndField) {
  const std::string path =
      WriteFile("bad.yaml", "name: x\nresources: {nodes: 0, gpus_per_node: 1}\ncommand: [a]\n");
  EXPECT_EQ(Run({"submit", path}), 2);
  EXPECT_THAT(err_.str(), HasSubstr(path + ": resources.nodes"));
}

TEST_F(CliTest, SubmitPrintsTheJobId) {
  FakeCoordinator fake([](const Envelope&) -> Body { return protocols::SubmitJobReply{17}; });
  EXPECT_EQ(RunAgainst(fake, {"submit", WriteFile("hello.yaml", kHelloSpec)}), 0);
  EXPECT_EQ(out_.str(), "17\n");
  EXPECT_EQ(fake.requests().at(0).token, "acme-token");
}

TEST_F(CliTest, SubmitInJsonModePrintsAnIdDocument) {
  FakeCoordinator fake([](const Envelope&) -> Body { return protocols::SubmitJobReply{17}; });
  EXPECT_EQ(RunAgainst(fake, {"-o", "json", "submit", WriteFile("hello.yaml", kHelloSpec)}), 0);
  EXPECT_EQ(nlohmann::json::parse(out_.str()), nlohmann::json({{"id", "17"}, {"array", nullptr}}));
}

TEST_F(CliTest, SubmitWaitExitsOneWhenTheJobFails) {
  FakeCoordinator fake([](const Envelope& request) -> Body {
    if (std::holds_alternative<protocols::SubmitJobRequest>(request.body)) {
      return protocols::SubmitJobReply{17};
    }
    return JobReplyIn("failed");
  });
  EXPECT_EQ(RunAgainst(fake, {"submit", "--wait", WriteFile("hello.yaml", kHelloSpec)}), 1);
  EXPECT_THAT(err_.str(), HasSubstr("job 17: failed"));
}

TEST_F(CliTest, SubmitWaitExitsZeroWhenTheJobSucceeds) {
  FakeCoordinator fake([](const Envelope& request) -> Body {
    if (std::holds_alternative<protocols::SubmitJobRequest>(request.body)) {
      return protocols::SubmitJobReply{17};
    }
    return JobReplyIn("succeeded");
  });
  EXPECT_EQ(RunAgainst(fake, {"submit", "--wait", WriteFile("hello.yaml", kHelloSpec)}), 0);
}

TEST_F(CliTest, UnknownJobExitsThree) {
  FakeCoordinator fake([](const Envelope&) -> Body {
    return protocols::ErrorReply{static_cast<uint32_t>(absl::StatusCode::kNotFound),
                                 "job 9 not found"};
  });
  EXPECT_EQ(RunAgainst(fake, {"show", "9"}), 3);
  EXPECT_EQ(err_.str(), "sublet: job 9 not found\n");
  EXPECT_EQ(out_.str(), "");
}

TEST_F(CliTest, ErrorInJsonModeIsAJsonDocumentOnStdout) {
  FakeCoordinator fake([](const Envelope&) -> Body {
    return protocols::ErrorReply{static_cast<uint32_t>(absl::StatusCode::kPermissionDenied),
                                 "admins only"};
  });
  EXPECT_EQ(RunAgainst(fake, {"jobs", "--all", "-o", "json"}), 4);
  nlohmann::json error = nlohmann::json::parse(out_.str());
  EXPECT_EQ(error["error"]["code"], "PERMISSION_DENIED");
  EXPECT_EQ(error["error"]["message"], "admins only");
}

TEST_F(CliTest, UnreachableCoordinatorExitsFiveNamingTheAddress) {
  EXPECT_EQ(Run({"--coordinator", "tcp://127.0.0.1:1", "--coordinator-key",
                 protocols::NewCurveKeyPair().public_key, "--timeout", "100ms", "nodes"}),
            5);
  EXPECT_EQ(err_.str(), "sublet: cannot reach coordinator at tcp://127.0.0.1:1\n");
}

TEST_F(CliTest, WrongCoordinatorKeyExitsFiveSayingSo) {
  FakeCoordinator fake([](const Envelope&) -> Body { return protocols::NodeListReply{}; });
  const std::string wrong = protocols::NewCurveKeyPair().public_key;
  // A minute's timeout: the exit must come from the failed handshake.
  EXPECT_EQ(Run({"--coordinator", fake.endpoint(), "--coordinator-key", wrong, "--token",
                 "acme-token", "--timeout", "60s", "nodes"}),
            5);
  EXPECT_THAT(err_.str(), HasSubstr("pinned " + wrong));
  EXPECT_TRUE(fake.requests().empty());
}

TEST_F(CliTest, NoCoordinatorKeyExitsTwoSayingWhereToFindIt) {
  FakeCoordinator fake([](const Envelope&) -> Body { return protocols::NodeListReply{}; });
  EXPECT_EQ(Run({"--coordinator", fake.endpoint(), "--token", "acme-token", "nodes"}), 2);
  EXPECT_THAT(err_.str(), HasSubstr("--coordinator-key"));
  EXPECT_TRUE(fake.requests().empty());
}

TEST_F(CliTest, JobsInJsonModeListsJobs) {
  FakeCoordinator fake([](const Envelope&) -> Body {
    return protocols::JobListReply{{std::get<protocols::JobReply>(JobReplyIn("running")).job}};
  });
  EXPECT_EQ(RunAgainst(fake, {"-o", "json", "jobs"}), 0);
  nlohmann::json jobs = nlohmann::json::parse(out_.str());
  ASSERT_EQ(jobs["jobs"].size(), 1u);
  EXPECT_EQ(jobs["jobs"][0]["state"], "running");
}

TEST_F(CliTest, CancelPrintsTheNewState) {
  FakeCoordinator fake([](const Envelope&) -> Body { return JobReplyIn("cancelled"); });
  EXPECT_EQ(RunAgainst(fake, {"cancel", "17"}), 0);
  EXPECT_EQ(out_.str(), "job 17: cancelled\n");
}

TEST_F(CliTest, LogsWritesEveryChunkInOrder) {
  FakeCoordinator fake([](const Envelope& request) -> Body {
    const auto& read = std::get<protocols::ReadLogsRequest>(request.body);
    if (read.offset == 0) return protocols::LogsReply{"hello ", 6, false};
    return protocols::LogsReply{"world\n", 12, true};
  });
  EXPECT_EQ(RunAgainst(fake, {"logs", "17", "--rank", "2"}), 0);
  EXPECT_EQ(out_.str(), "hello world\n");
  EXPECT_EQ(std::get<protocols::ReadLogsRequest>(fake.requests().at(0).body).rank, 2u);
}

// A malformed JOB or RECLAIM argument is refused before anything is sent:
// the fake coordinator would answer any request, and sees none.
class CliBadIdTest
    : public CliTest,
      public ::testing::WithParamInterface<std::tuple<std::vector<std::string>, std::string>> {};

TEST_P(CliBadIdTest, ExitsTwoBeforeContactingTheCoordinator) {
  const auto& [args, message] = GetParam();
  FakeCoordinator fake([](const Envelope&) -> Body { return JobReplyIn("running"); });
  EXPECT_EQ(RunAgainst(fake, args), 2);
  EXPECT_EQ(err_.str(), "sublet: " + message + "\n");
  EXPECT_EQ(out_.str(), "");
  EXPECT_TRUE(fake.requests().empty());
}

INSTANTIATE_TEST_SUITE_P(
    JobAndReclaimArguments, CliBadIdTest,
    ::testing::Values(std::make_tuple(std::vector<std::string>{"show", "abc"},
                                      "invalid job id 'abc': expected a positive integer"),
                      std::make_tuple(std::vector<std::string>{"show", "0"},
                                      "invalid job id '0': expected a positive integer"),
                      std::make_tuple(std::vector<std::string>{"cancel", "-1"},
                                      "invalid job id '-1': expected a positive integer"),
                      std::make_tuple(std::vector<std::string>{"logs", "12x"},
                                      "invalid job id '12x': expected a positive integer"),
                      std::make_tuple(std::vector<std::string>{"logs", "-f", "7.5"},
                                      "invalid job id '7.5': expected a positive integer"),
                      std::make_tuple(std::vector<std::string>{"reclaims", "abc"},
                                      "invalid reclaim id 'abc': expected a positive integer"),
                      std::make_tuple(std::vector<std::string>{"release", "0"},
                                      "invalid reclaim id '0': expected a positive integer")));

TEST_F(CliTest, BadJobIdInJsonModeIsAJsonInvalidArgumentDocument) {
  EXPECT_EQ(Run({"--coordinator", "tcp://127.0.0.1:1", "-o", "json", "show", "abc"}), 2);
  nlohmann::json error = nlohmann::json::parse(out_.str());
  EXPECT_EQ(error["error"]["code"], "INVALID_ARGUMENT");
  EXPECT_EQ(error["error"]["message"], "invalid job id 'abc': expected a positive integer");
}

TEST_F(CliTest, ShowSendsTheIdAsANumber) {
  FakeCoordinator fake([](const Envelope&) -> Body { return JobReplyIn("running"); });
  EXPECT_EQ(RunAgainst(fake, {"show", "17"}), 0);
  EXPECT_EQ(std::get<protocols::GetJobRequest>(fake.requests().at(0).body).job_id, 17u);
}

TEST_F(CliTest, LogsInJsonModeNamesTheJobAsAString) {
  FakeCoordinator fake([](const Envelope&) -> Body {
    return protocols::LogsReply{"hi\n", 3, true};
  });
  EXPECT_EQ(RunAgainst(fake, {"-o", "json", "logs", "17"}), 0);
  nlohmann::json logs = nlohmann::json::parse(out_.str());
  EXPECT_EQ(logs["job"], "17");
  EXPECT_EQ(logs["data"], "hi\n");
  EXPECT_EQ(std::get<protocols::ReadLogsRequest>(fake.requests().at(0).body).job_id, 17u);
}

TEST_F(CliTest, LogsRejectsANonNumericRank) {
  EXPECT_EQ(Run({"logs", "17", "--rank", "two"}), 2);
  EXPECT_THAT(err_.str(), HasSubstr("--rank"));
}

}  // namespace
}  // namespace sublet::client::cli

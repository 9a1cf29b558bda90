#include "client/client.h"

#include <gtest/gtest.h>

#include <chrono>

#include "tests/client/fake_coordinator.h"

namespace sublet::client {
namespace {

using protocols::Body;
using protocols::Envelope;
using testing::FakeCoordinator;

ClientOptions OptionsFor(const FakeCoordinator& fake) {
  return {.endpoint = fake.endpoint(),
          .token = "acme-token",
          .coordinator_key = fake.public_key(),
          .timeout = std::chrono::seconds(5)};
}

Body Error(absl::StatusCode code, std::string message) {
  return protocols::ErrorReply{static_cast<uint32_t>(code), std::move(message)};
}

TEST(ExitCodeForTest, MapsCanonicalCodesToDesignExitCodes) {
  EXPECT_EQ(ExitCodeFor(absl::OkStatus()), 0);
  EXPECT_EQ(ExitCodeFor(absl::InvalidArgumentError("x")), 2);
  EXPECT_EQ(ExitCodeFor(absl::OutOfRangeError("x")), 2);
  EXPECT_EQ(ExitCodeFor(absl::NotFoundError("x")), 3);
  EXPECT_EQ(ExitCodeFor(absl::PermissionDeniedError("x")), 4);
  EXPECT_EQ(ExitCodeFor(absl::UnauthenticatedError("x")), 4);
  EXPECT_EQ(ExitCodeFor(absl::UnavailableError("x")), 5);
  EXPECT_EQ(ExitCodeFor(absl::DeadlineExceededError("x")), 5);
  EXPECT_EQ(ExitCodeFor(absl::InternalError("x")), 1);
  EXPECT_EQ(ExitCodeFor(absl::FailedPreconditionError("x")), 1);
}

TEST(IsFinalStateTest, OnlySucceededFailedAndCancelledAreFinal) {
  EXPECT_TRUE(IsFinalState("succeeded"));
  EXPECT_TRUE(IsFinalState("failed"));
  EXPECT_TRUE(IsFinalState("cancelled"));
  EXPECT_FALSE(IsFinalState("pending"));
  EXPECT_FALSE(IsFinalState("running"));
  EXPECT_FALSE(IsFinalState("preempting"));
}

TEST(ClientTest, SubmitReturnsTheCoordinatorsJobId) {
  FakeCoordinator fake([](const Envelope&) -> Body { return protocols::SubmitJobReply{17}; });
  Client client(OptionsFor(fake));
  protocols::JobSpec spec;
  spec.name = "hello";
  absl::StatusOr<uint64_t> id = client.Submit(spec);
  ASSERT_TRUE(id.ok()) << id.status();
  EXPECT_EQ(*id, 17u);
}

TEST(ClientTest, SubmitSendsTheTokenAndTheSpec) {
  FakeCoordinator fake([](const Envelope&) -> Body { return protocols::SubmitJobReply{1}; });
  Client client(OptionsFor(fake));
  protocols::JobSpec spec;
  spec.name = "hello";
  spec.nodes = 2;
  ASSERT_TRUE(client.Submit(spec).ok());
  std::vector<Envelope> requests = fake.requests();
  ASSERT_EQ(requests.size(), 1u);
  EXPECT_EQ(requests[0].token, "acme-token");
  const auto* submit = std::get_if<protocols::SubmitJobRequest>(&requests[0].body);
  ASSERT_NE(submit, nullptr);
  EXPECT_EQ(submit->spec, spec);
}

TEST(ClientTest, ListJobsAsksForAllOnlyWhenTold) {
  FakeCoordinator fake([](const Envelope&) -> Body { return protocols::JobListReply{}; });
  Client client(OptionsFor(fake));
  ASSERT_TRUE(client.ListJobs(/*all=*/true).ok());
  ASSERT_TRUE(client.ListJobs(/*all=*/false).ok());
  std::vector<Envelope> requests = fake.requests();
  ASSERT_EQ(requests.size(), 2u);
  EXPECT_TRUE(std::get<protocols::ListJobsRequest>(requests[0].body).all);
  EXPECT_FALSE(std::get<protocols::ListJobsRequest>(requests[1].body).all);
}

TEST(ClientTest, ReadLogsReturnsTheChunk) {
  FakeCoordinator fake([](const Envelope&) -> Body {
    return protocols::LogsReply{.data = "hello\n", .next_offset = 6, .complete = true};
  });
  Client client(OptionsFor(fake));
  absl::StatusOr<protocols::LogsReply> logs = client.ReadLogs({.job_id = 3, .rank = 1});
  ASSERT_TRUE(logs.ok()) << logs.status();
  EXPECT_EQ(logs->data, "hello\n");
  EXPECT_TRUE(logs->complete);
  EXPECT_EQ(std::get<protocols::ReadLogsRequest>(fake.requests()[0].body).rank, 1u);
}

TEST(ClientTest, ErrorReplyBecomesTheStatusItNames) {
  FakeCoordinator fake(
      [](const Envelope&) { return Error(absl::StatusCode::kNotFound, "job 99 not found"); });
  Client client(OptionsFor(fake));
  absl::StatusOr<protocols::JobInfo> job = client.GetJob(99);
  EXPECT_EQ(job.status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(job.status().message(), "job 99 not found");
}

TEST(ClientTest, RefusedTokenIsPermissionError) {
  FakeCoordinator fake(
      [](const Envelope&) { return Error(absl::StatusCode::kUnauthenticated, "unknown token"); });
  Client client(OptionsFor(fake));
  EXPECT_EQ(ExitCodeFor(client.ListNodes().status()), 4);
}

TEST(ClientTest, ReplyOfTheWrongTypeIsInternal) {
  FakeCoordinator fake([](const Envelope&) -> Body { return protocols::NodeListReply{}; });
  Client client(OptionsFor(fake));
  absl::StatusOr<protocols::JobInfo> job = client.Cancel(4);
  EXPECT_EQ(job.status().code(), absl::StatusCode::kInternal);
  EXPECT_NE(job.status().message().find("unexpected reply"), absl::string_view::npos);
}

TEST(ClientTest, UnreachableCoordinatorIsUnavailableNamingTheAddress) {
  ClientOptions options;
  options.endpoint = "tcp://127.0.0.1:1";
  options.coordinator_key = protocols::NewCurveKeyPair().public_key;
  options.timeout = std::chrono::milliseconds(100);
  Client client(options);
  absl::StatusOr<std::vector<protocols::NodeInfo>> nodes = client.ListNodes();
  EXPECT_EQ(nodes.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(nodes.status().message(), "cannot reach coordinator at tcp://127.0.0.1:1");
}

TEST(ClientTest, WithoutACoordinatorKeyEveryCallIsInvalidArgumentSayingWhereToGetIt) {
  FakeCoordinator fake([](const Envelope&) -> Body { return protocols::NodeListReply{}; });
  ClientOptions options = OptionsFor(fake);
  options.coordinator_key.clear();
  Client client(options);
  absl::StatusOr<std::vector<protocols::NodeInfo>> nodes = client.ListNodes();
  ASSERT_EQ(nodes.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(nodes.status().message().find("SUBLET_COORDINATOR_KEY"), absl::string_view::npos);
  EXPECT_TRUE(fake.requests().empty());
  options.coordinator_key = "not-a-key";
  EXPECT_EQ(Client(options).ListNodes().status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(ClientTest, WrongCoordinatorKeyIsUnavailableNamingThePinnedKeyAndSendsNothing) {
  FakeCoordinator fake([](const Envelope&) -> Body { return protocols::NodeListReply{}; });
  ClientOptions options = OptionsFor(fake);
  options.coordinator_key = protocols::NewCurveKeyPair().public_key;
  options.timeout = std::chrono::seconds(60);  // the failure must come from the handshake
  Client client(options);
  absl::StatusOr<std::vector<protocols::NodeInfo>> nodes = client.ListNodes();
  ASSERT_EQ(nodes.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_NE(nodes.status().message().find(options.coordinator_key), absl::string_view::npos)
      << nodes.status();
  EXPECT_EQ(ExitCodeFor(nodes.status()), 5);
  EXPECT_TRUE(fake.requests().empty());
}

}  // namespace
}  // namespace sublet::client

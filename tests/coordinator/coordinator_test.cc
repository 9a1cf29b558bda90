// The coordinator's event loop in-process, spoken to over real ZeroMQ sockets.
#include "coordinator/coordinator.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <thread>
#include <tuple>

#include "protocols/channel.h"
#include "protocols/codec.h"

namespace sublet::coordinator {
namespace {

using ::testing::HasSubstr;

class CoordinatorTest : public ::testing::Test {
 protected:
  void Start(size_t max_frames_per_peer = CoordinatorOptions{}.max_frames_per_peer) {
    Create(max_frames_per_peer);
    thread_ = std::thread([this] { coordinator_->Run(stop_); });
  }

  // The coordinator without its event loop: turns are driven by TEST_Turn.
  void Create(size_t max_frames_per_peer = CoordinatorOptions{}.max_frames_per_peer) {
    CoordinatorOptions options;
    options.listen = "tcp://127.0.0.1:0";
    options.state_dir = ::testing::TempDir() + "/coordinator_test_" +
                        ::testing::UnitTest::GetInstance()->current_test_info()->name();
    std::filesystem::remove_all(options.state_dir);
    options.config.storage_root = options.state_dir + "/storage";
    options.config.AddToken("acme-token", {Role::kTenant, "acme"});
    options.config.AddToken("admin-token", {Role::kAdmin, "infra"});
    options.max_frames_per_peer = max_frames_per_peer;
    auto c = Coordinator::Create(options, context_, clock_);
    ASSERT_TRUE(c.ok()) << c.status();
    coordinator_ = *std::move(c);
  }

  void TearDown() override {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }

  absl::StatusOr<protocols::Envelope> Call(protocols::Body body,
                                           const std::string& token = "acme-token") {
    protocols::ClientChannel channel(context_, coordinator_->endpoint(), {},
                                     {.server_key = coordinator_->public_key()});
    protocols::Envelope e;
    e.token = token;
    e.body = std::move(body);
    return channel.Call(std::move(e), std::chrono::seconds(10));
  }

  // Submits a one-rank job running `true` as acme; its id.
  absl::StatusOr<uint64_t> SubmitTrue() {
    protocols::JobSpec spec;
    spec.name = "x";
    spec.command = {"true"};
    SUBLET_ASSIGN_OR_RETURN(protocols::Envelope reply, Call(protocols::SubmitJobRequest{spec}));
    SUBLET_RETURN_IF_ERROR(protocols::StatusFromReply(reply));
    return std::get<protocols::SubmitJobReply>(reply.body).job_id;
  }

  zmq::context_t context_;
  RealClock clock_;
  std::unique_ptr<Coordinator> coordinator_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

TEST_F(CoordinatorTest, RefusesUnknownToken) {
  Start();
  auto reply = Call(protocols::ListJobsRequest{}, "who-knows");
  ASSERT_TRUE(reply.ok()) << reply.status();
  EXPECT_EQ(protocols::StatusFromReply(*reply).code(), absl::StatusCode::kPermissionDenied);
}

TEST_F(CoordinatorTest, AMissingTokenIsToldHowToPassOne) {
  Start();
  auto reply = Call(protocols::ListJobsRequest{}, "");
  ASSERT_TRUE(reply.ok()) << reply.status();
  absl::Status s = protocols::StatusFromReply(*reply);
  EXPECT_EQ(s.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(std::string(s.message()), HasSubstr("no token given: pass --token"));
  EXPECT_THAT(std::string(s.message()), HasSubstr("SUBLET_TOKEN"));
}

TEST_F(CoordinatorTest, AnswersGarbageWithAnErrorAndKeepsServing) {
  Start();
  zmq::socket_t raw(context_, zmq::socket_type::dealer);
  const protocols::CurveKeyPair keys = protocols::NewCurveKeyPair();
  raw.set(zmq::sockopt::curve_serverkey, coordinator_->public_key());
  raw.set(zmq::sockopt::curve_publickey, keys.public_key);
  raw.set(zmq::sockopt::curve_secretkey, keys.secret_key);
  raw.connect(coordinator_->endpoint());
  raw.send(zmq::str_buffer("definitely not a capnp frame"), zmq::send_flags::none);
  zmq::message_t reply;
  ASSERT_TRUE(raw.recv(reply).has_value());
  auto decoded = protocols::Decode(reply.to_string());
  ASSERT_TRUE(decoded.ok());
  EXPECT_EQ(protocols::StatusFromReply(*decoded).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(Call(protocols::ListJobsRequest{}).ok());
}

TEST_F(CoordinatorTest, APlaintextClientIsServedNothingAndOthersKeepBeingServed) {
  Start();
  zmq::socket_t raw(context_, zmq::socket_type::dealer);
  raw.set(zmq::sockopt::linger, 0);
  raw.connect(coordinator_->endpoint());
  protocols::Envelope e;
  e.token = "admin-token";
  e.body = protocols::ListJobsRequest{true};
  raw.send(zmq::buffer(protocols::Encode(e)), zmq::send_flags::dontwait);
  // A CURVE client is served meanwhile; the plaintext one never gets a byte.
  EXPECT_TRUE(Call(protocols::ListJobsRequest{}).ok());
  zmq::pollitem_t item{raw.handle(), 0, ZMQ_POLLIN, 0};
  EXPECT_EQ(zmq::poll(&item, 1, std::chrono::milliseconds(300)), 0);
}

TEST_F(CoordinatorTest, KeepsItsKeyPairAcrossRestartsInTheStateDir) {
  Start();
  const std::string key = coordinator_->public_key();
  ASSERT_TRUE(protocols::ParseCurveKey(key, "key").ok());
  std::ifstream pub(::testing::TempDir() + "/coordinator_test_" +
                    ::testing::UnitTest::GetInstance()->current_test_info()->name() +
                    "/coordinator.pub");
  std::string written;
  std::getline(pub, written);
  EXPECT_EQ(written, key);
  stop_ = true;
  thread_.join();
  coordinator_.reset();
  stop_ = false;
  CoordinatorOptions options;
  options.listen = "tcp://127.0.0.1:0";
  options.state_dir = ::testing::TempDir() + "/coordinator_test_" +
                      ::testing::UnitTest::GetInstance()->current_test_info()->name();
  options.config.storage_root = options.state_dir + "/storage";
  auto again = Coordinator::Create(options, context_, clock_);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ((*again)->public_key(), key);
}

TEST_F(CoordinatorTest, LogsOfAJobThatNeverStartedAreAFailedPrecondition) {
  Start();
  absl::StatusOr<uint64_t> submitted = SubmitTrue();
  ASSERT_TRUE(submitted.ok()) << submitted.status();
  const uint64_t id = *submitted;
  auto logs = Call(protocols::ReadLogsRequest{id, 0, 0, 0, 1024});
  ASSERT_TRUE(logs.ok());
  absl::Status status = protocols::StatusFromReply(*logs);
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(status.message()), HasSubstr("has not started"));
}

// Ids start at 1: 0 names no job or reclaim, and like an unknown id it is
// "not found", naming the id.
TEST_F(CoordinatorTest, ZeroOrUnknownIdsAreNotFound) {
  Start();
  for (auto [body, token, message] :
       {std::tuple<protocols::Body, std::string, std::string>{protocols::GetJobRequest{0},
                                                              "acme-token", "job 0 not found"},
        {protocols::GetJobRequest{7}, "acme-token", "job 7 not found"},
        {protocols::CancelJobRequest{7}, "acme-token", "job 7 not found"},
        {protocols::ReadLogsRequest{7, 0, 0, 0, 1024}, "acme-token", "job 7 not found"},
        {protocols::ListReclaimsRequest{9}, "admin-token", "reclaim 9 not found"},
        {protocols::ReleaseRequest{9, {}}, "admin-token", "reclaim 9 not found"}}) {
    SCOPED_TRACE(message);
    auto reply = Call(body, token);
    ASSERT_TRUE(reply.ok()) << reply.status();
    absl::Status status = protocols::StatusFromReply(*reply);
    EXPECT_EQ(status.code(), absl::StatusCode::kNotFound);
    EXPECT_EQ(status.message(), message);
  }
}

TEST_F(CoordinatorTest, SubmittedJobIsFoundByItsNumericId) {
  Start();
  absl::StatusOr<uint64_t> submitted = SubmitTrue();
  ASSERT_TRUE(submitted.ok()) << submitted.status();
  const uint64_t id = *submitted;
  EXPECT_EQ(id, 1u);
  auto got = Call(protocols::GetJobRequest{id});
  ASSERT_TRUE(got.ok());
  ASSERT_TRUE(protocols::StatusFromReply(*got).ok()) << protocols::StatusFromReply(*got);
  EXPECT_EQ(std::get<protocols::JobReply>(got->body).job.id, id);
}

TEST_F(CoordinatorTest, ASpecSentAsYamlIsParsedByTheCoordinatorAndABadOneNamesTheField) {
  Start();
  protocols::SubmitJobRequest request;
  request.spec_yaml = "name: from-python\nresources: {nodes: 1, gpus_per_node: 1}\ncommand: [\"true\"]\n";
  auto reply = Call(request);
  ASSERT_TRUE(reply.ok());
  ASSERT_TRUE(protocols::StatusFromReply(*reply).ok()) << protocols::StatusFromReply(*reply);
  const uint64_t id = std::get<protocols::SubmitJobReply>(reply->body).job_id;
  auto got = Call(protocols::GetJobRequest{id});
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(std::get<protocols::JobReply>(got->body).job.spec.name, "from-python");

  // JSON is YAML too (what the SDK sends for a dict); a wrong field is named.
  request.spec_yaml = R"({"name": "x", "command": ["true"], "resources": {"nodes": "two"}})";
  reply = Call(request);
  ASSERT_TRUE(reply.ok());
  absl::Status status = protocols::StatusFromReply(*reply);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(status.message()), HasSubstr("resources.nodes"));
  request.spec_yaml = "name: [unclosed";
  reply = Call(request);
  ASSERT_TRUE(reply.ok());
  EXPECT_EQ(protocols::StatusFromReply(*reply).code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(CoordinatorTest, FloodingConnectionIsThrottledWhileOthersAreServed) {
  Start(/*max_frames_per_peer=*/2);
  zmq::socket_t flooder(context_, zmq::socket_type::dealer);
  flooder.set(zmq::sockopt::sndhwm, 0);
  const protocols::CurveKeyPair keys = protocols::NewCurveKeyPair();
  flooder.set(zmq::sockopt::curve_serverkey, coordinator_->public_key());
  flooder.set(zmq::sockopt::curve_publickey, keys.public_key);
  flooder.set(zmq::sockopt::curve_secretkey, keys.secret_key);
  flooder.connect(coordinator_->endpoint());
  protocols::Envelope e;
  e.token = "acme-token";
  e.body = protocols::ListJobsRequest{};
  const std::string frame = protocols::Encode(e);
  // Flood until the coordinator pushes back (bounded), calling as a polite
  // client in between: every polite call must be answered with its reply,
  // not an error.
  int throttled = 0;
  int rounds = 0;
  int polite_served = 0;
  for (; rounds < 200 && throttled == 0; ++rounds) {
    for (int i = 0; i < 500; ++i) flooder.send(zmq::buffer(frame), zmq::send_flags::dontwait);
    auto polite = Call(protocols::ListJobsRequest{});
    if (polite.ok() && protocols::StatusFromReply(*polite).ok() &&
        std::holds_alternative<protocols::JobListReply>(polite->body)) {
      ++polite_served;
    }
    zmq::message_t reply;
    while (flooder.recv(reply, zmq::recv_flags::dontwait)) {
      auto decoded = protocols::Decode(reply.to_string());
      if (decoded.ok() && protocols::StatusFromReply(*decoded).code() ==
                              absl::StatusCode::kResourceExhausted) {
        ++throttled;
      }
    }
  }
  EXPECT_GT(throttled, 0);
  EXPECT_EQ(polite_served, rounds);
}

// The README's limit, exactly: in one turn a connection gets its first 256
// frames served and the rest refused with RESOURCE_EXHAUSTED, while another
// connection's frames in the same turn are all served.
TEST_F(CoordinatorTest, AConnectionsFramesBeyond256InOneTurnAreRefusedAndOthersServed) {
  ASSERT_EQ(CoordinatorOptions{}.max_frames_per_peer, 256u);  // README: "Flooding client"
  Create();
  std::vector<protocols::Incoming> batch;
  uint64_t id = 0;
  auto frame = [&](const std::string& peer) {
    protocols::Envelope e;
    e.request_id = ++id;
    e.token = "acme-token";
    e.body = protocols::ListJobsRequest{};
    batch.push_back({peer, std::move(e), 64, "curve:" + peer});
  };
  for (int i = 0; i < 300; ++i) {
    frame("flooder");
    if (i % 100 == 99) frame("polite");  // 3 polite frames among the flood
  }
  std::map<std::string, int> served;
  std::map<std::string, int> refused;
  std::map<std::string, uint64_t> first_refused;
  for (auto& [peer, reply] : coordinator_->TEST_Turn(std::move(batch))) {
    absl::Status status = protocols::StatusFromReply(reply);
    if (status.ok() && std::holds_alternative<protocols::JobListReply>(reply.body)) {
      ++served[peer];
    } else if (status.code() == absl::StatusCode::kResourceExhausted) {
      if (refused[peer]++ == 0) first_refused[peer] = reply.request_id;
      EXPECT_THAT(std::string(status.message()), HasSubstr("retry"));
    } else {
      ADD_FAILURE() << peer << ": " << status;
    }
  }
  EXPECT_EQ(served["flooder"], 256);
  EXPECT_EQ(refused["flooder"], 44);
  // Frames 1-256 of the flooder came before two polite ones: its 257th is
  // request 259.
  EXPECT_EQ(first_refused["flooder"], 259u);
  EXPECT_EQ(served["polite"], 3);
  EXPECT_EQ(refused["polite"], 0);
}

}  // namespace
}  // namespace sublet::coordinator

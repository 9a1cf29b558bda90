// ServerChannel and ClientChannel over loopback TCP. The server side runs on
// a helper thread that owns the server socket while the client calls.
#include "protocols/channel.h"

#include <gtest/gtest.h>

#include <chrono>
#include <functional>
#include <string>
#include <thread>

namespace sublet::protocols {
namespace {

using std::chrono::milliseconds;

constexpr milliseconds kGenerous{10'000};  // only reached when something is broken

// Waits (by polling, not sleeping) until `socket` has `events` pending.
bool WaitFor(zmq::socket_t& socket, short events) {
  zmq::pollitem_t item{socket.handle(), 0, events, 0};
  return zmq::poll(&item, 1, kGenerous) > 0;
}

Envelope Request(Body body) {
  Envelope envelope;
  envelope.token = "acme-token";
  envelope.body = std::move(body);
  return envelope;
}

Envelope ReplyTo(uint64_t request_id, Body body) {
  Envelope envelope;
  envelope.request_id = request_id;
  envelope.body = std::move(body);
  return envelope;
}

class ChannelTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(server_.Bind("tcp://127.0.0.1:0").ok()); }
  void TearDown() override {
    if (serving_.joinable()) serving_.join();
  }

  std::optional<Incoming> ReceiveOne() {
    if (!WaitFor(server_.socket(), ZMQ_POLLIN)) return std::nullopt;
    return server_.TryReceive();
  }

  // Serves one request on a thread: `respond` sends whatever replies it likes.
  void ServeOne(std::function<void(ServerChannel&, const Incoming&)> respond) {
    serving_ = std::thread([this, respond] {
      std::optional<Incoming> in = ReceiveOne();
      if (in && in->envelope.ok()) respond(server_, *in);
    });
  }

  zmq::context_t context_;
  ServerChannel server_{context_};
  std::thread serving_;
};

TEST_F(ChannelTest, EndpointResolvesTheBoundPort) {
  EXPECT_NE(server_.endpoint(), "tcp://127.0.0.1:0");
  EXPECT_EQ(server_.endpoint().rfind("tcp://127.0.0.1:", 0), 0u);
}

TEST_F(ChannelTest, CallReturnsTheReply) {
  std::string token_seen;
  ServeOne([&](ServerChannel& server, const Incoming& in) {
    token_seen = in.envelope->token;
    EXPECT_TRUE(server.Send(in.peer, ReplyTo(in.envelope->request_id, SubmitJobReply{1})).ok());
  });
  ClientChannel client(context_, server_.endpoint());
  absl::StatusOr<Envelope> reply = client.Call(Request(SubmitJobRequest{}), kGenerous);
  ASSERT_TRUE(reply.ok()) << reply.status();
  EXPECT_EQ(reply->body, Body(SubmitJobReply{1}));
  serving_.join();
  EXPECT_EQ(token_seen, "acme-token");
}

TEST_F(ChannelTest, CallSkipsStaleReplies) {
  constexpr uint64_t kStaleJob = 13;
  constexpr uint64_t kFreshJob = 14;
  ServeOne([](ServerChannel& server, const Incoming& in) {
    uint64_t id = in.envelope->request_id;
    EXPECT_TRUE(server.Send(in.peer, ReplyTo(id - 1, SubmitJobReply{kStaleJob})).ok());
    EXPECT_TRUE(server.Send(in.peer, ReplyTo(id, SubmitJobReply{kFreshJob})).ok());
  });
  ClientChannel client(context_, server_.endpoint());
  absl::StatusOr<Envelope> reply = client.Call(Request(ListJobsRequest{}), kGenerous);
  ASSERT_TRUE(reply.ok()) << reply.status();
  EXPECT_EQ(reply->body, Body(SubmitJobReply{kFreshJob}));
}

TEST_F(ChannelTest, CallToSilentServerIsUnavailable) {
  ClientChannel client(context_, server_.endpoint());
  absl::StatusOr<Envelope> reply = client.Call(Request(ListNodesRequest{}), milliseconds(200));
  EXPECT_TRUE(absl::IsUnavailable(reply.status())) << reply.status();
  EXPECT_NE(std::string(reply.status().message()).find(server_.endpoint()), std::string::npos);
}

TEST_F(ChannelTest, CallToNothingListeningIsUnavailable) {
  std::string endpoint;
  {
    ServerChannel gone(context_);
    ASSERT_TRUE(gone.Bind("tcp://127.0.0.1:0").ok());
    endpoint = gone.endpoint();
  }
  ClientChannel client(context_, endpoint);
  absl::StatusOr<Envelope> reply = client.Call(Request(ListNodesRequest{}), milliseconds(200));
  EXPECT_TRUE(absl::IsUnavailable(reply.status())) << reply.status();
  EXPECT_NE(std::string(reply.status().message()).find(endpoint), std::string::npos);
}

TEST_F(ChannelTest, MalformedEndpointFailsCalls) {
  ClientChannel client(context_, "not-an-endpoint");
  EXPECT_TRUE(absl::IsInvalidArgument(
      client.Call(Request(ListNodesRequest{}), milliseconds(200)).status()));
}

TEST_F(ChannelTest, BindingATakenEndpointIsUnavailable) {
  ServerChannel second(context_);
  absl::Status status = second.Bind(server_.endpoint());
  EXPECT_TRUE(absl::IsUnavailable(status)) << status;
  EXPECT_NE(std::string(status.message()).find(server_.endpoint()), std::string::npos);
}

TEST_F(ChannelTest, ServerRejectsGarbageAndKeepsServing) {
  zmq::socket_t raw(context_, zmq::socket_type::dealer);
  raw.connect(server_.endpoint());
  raw.send(zmq::str_buffer("garbage!"), zmq::send_flags::none);
  std::optional<Incoming> garbage = ReceiveOne();
  ASSERT_TRUE(garbage.has_value());
  EXPECT_TRUE(absl::IsInvalidArgument(garbage->envelope.status())) << garbage->envelope.status();
  EXPECT_EQ(garbage->frame_bytes, 8u);

  raw.send(zmq::str_buffer("one"), zmq::send_flags::sndmore);
  raw.send(zmq::str_buffer("two"), zmq::send_flags::none);
  std::optional<Incoming> multipart = ReceiveOne();
  ASSERT_TRUE(multipart.has_value());
  EXPECT_TRUE(absl::IsInvalidArgument(multipart->envelope.status()))
      << multipart->envelope.status();

  ServeOne([](ServerChannel& server, const Incoming& in) {
    EXPECT_TRUE(server.Send(in.peer, ReplyTo(in.envelope->request_id, ListJobsRequest{})).ok());
  });
  ClientChannel client(context_, server_.endpoint());
  EXPECT_TRUE(client.Call(Request(ListNodesRequest{}), kGenerous).ok());
}

TEST_F(ChannelTest, AsyncSendAndTryReceive) {
  ClientChannel client(context_, server_.endpoint());
  EXPECT_FALSE(client.TryReceive().has_value());
  ASSERT_TRUE(WaitFor(client.socket(), ZMQ_POLLOUT));  // connected
  WorkerReport report;
  report.node = "n1";
  ASSERT_TRUE(client.Send(Request(report)).ok());

  std::optional<Incoming> in = ReceiveOne();
  ASSERT_TRUE(in.has_value() && in->envelope.ok());
  EXPECT_EQ(std::get<WorkerReport>(in->envelope->body).node, "n1");
  WorkerSync sync;
  sync.incarnation = "inc";
  ASSERT_TRUE(server_.Send(in->peer, ReplyTo(9, sync)).ok());

  ASSERT_TRUE(WaitFor(client.socket(), ZMQ_POLLIN));
  std::optional<absl::StatusOr<Envelope>> reply = client.TryReceive();
  ASSERT_TRUE(reply.has_value() && reply->ok());
  EXPECT_EQ(std::get<WorkerSync>((*reply)->body).incarnation, "inc");
}

}  // namespace
}  // namespace sublet::protocols

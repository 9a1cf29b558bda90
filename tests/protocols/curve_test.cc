// CURVE on the channel: keys and key files, the ZAP handler's verdicts, the
// User-Id every admitted message carries, and a client that pinned the wrong
// server key failing at once with a message that says so.
#include "protocols/curve.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

#include "protocols/channel.h"

namespace sublet::protocols {
namespace {

using std::chrono::milliseconds;

// Long enough that only a broken handshake check would reach it: a wrong key
// must fail well before (the test fails on the timeout's message).
constexpr milliseconds kGenerous{30'000};

Envelope Request(Body body) {
  Envelope envelope;
  envelope.token = "acme-token";
  envelope.body = std::move(body);
  return envelope;
}

std::string TempPath(const std::string& name) {
  return (std::filesystem::temp_directory_path() /
          (name + "-" + std::to_string(getpid()) + "-" +
           ::testing::UnitTest::GetInstance()->current_test_info()->name()))
      .string();
}

TEST(CurveKeyTest, NewKeyPairsParseAndDeriveTheirPublicKey) {
  CurveKeyPair a = NewCurveKeyPair();
  CurveKeyPair b = NewCurveKeyPair();
  EXPECT_NE(a.public_key, b.public_key);
  ASSERT_TRUE(ParseCurveKey(a.public_key, "key").ok());
  EXPECT_EQ(*ParseCurveKey(" " + a.public_key + "\n", "key"), a.public_key);
  EXPECT_EQ(*CurvePublicKey(a.secret_key), a.public_key);
}

TEST(CurveKeyTest, MalformedKeysAreRefusedNamingWhatWasGiven) {
  absl::StatusOr<std::string> short_key = ParseCurveKey("abc", "--coordinator-key");
  ASSERT_TRUE(absl::IsInvalidArgument(short_key.status()));
  EXPECT_NE(short_key.status().message().find("--coordinator-key"), std::string::npos);
  // 40 characters, but not Z85 (a quote is outside its alphabet).
  EXPECT_FALSE(ParseCurveKey(std::string(39, 'a') + "\"", "key").ok());
}

TEST(CurveKeyTest, KeyFileIsCreatedOwnerOnlyAndReadBack) {
  const std::string path = TempPath("curve-key");
  std::filesystem::remove(path);
  bool created = false;
  absl::StatusOr<CurveKeyPair> made = LoadOrCreateKeyFile(path, &created);
  ASSERT_TRUE(made.ok()) << made.status();
  EXPECT_TRUE(created);
  struct stat st {};
  ASSERT_EQ(stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  absl::StatusOr<CurveKeyPair> again = LoadOrCreateKeyFile(path, &created);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_FALSE(created);
  EXPECT_EQ(again->public_key, made->public_key);
  EXPECT_EQ(again->secret_key, made->secret_key);
  std::filesystem::remove(path);
}

TEST(CurveKeyTest, KeyFileReadableByOthersIsRefused) {
  const std::string path = TempPath("curve-key-open");
  std::filesystem::remove(path);
  ASSERT_TRUE(LoadOrCreateKeyFile(path).ok());
  chmod(path.c_str(), 0644);
  absl::StatusOr<CurveKeyPair> read = ReadKeyFile(path);
  ASSERT_TRUE(absl::IsFailedPrecondition(read.status())) << read.status();
  EXPECT_NE(read.status().message().find("readable by group or others"), std::string::npos);
  std::filesystem::remove(path);
}

TEST(CurveKeyTest, KeyFileWithGarbageIsRefused) {
  const std::string path = TempPath("curve-key-bad");
  std::filesystem::remove(path);
  ASSERT_TRUE(WriteFileAtomically(path, "not a key\n", 0600).ok());
  absl::StatusOr<CurveKeyPair> read = ReadKeyFile(path);
  ASSERT_TRUE(absl::IsInvalidArgument(read.status())) << read.status();
  EXPECT_NE(read.status().message().find(path), std::string::npos);
  EXPECT_TRUE(absl::IsNotFound(ReadKeyFile(path + ".missing").status()));
  std::filesystem::remove(path);
}

TEST(AdmitCurveClientsTest, AdmitsCurveWithItsKeyAndRefusesTheRest) {
  EXPECT_EQ(AdmitCurveClients({"CURVE", "127.0.0.1", "KEY"}), "curve:KEY");
  EXPECT_FALSE(AdmitCurveClients({"NULL", "127.0.0.1", ""}).has_value());
  EXPECT_FALSE(AdmitCurveClients({"PLAIN", "127.0.0.1", ""}).has_value());
  EXPECT_FALSE(AdmitCurveClients({"CURVE", "127.0.0.1", ""}).has_value());
}

class CurveChannelTest : public ::testing::Test {
 protected:
  void Start(ZapPolicy policy = AdmitCurveClients) {
    ASSERT_TRUE(server_.EnableCurve(server_keys_, std::move(policy),
                                    [this](const ZapRequest&) { ++refused_; })
                    .ok());
    ASSERT_TRUE(server_.Bind("tcp://127.0.0.1:0").ok());
  }
  void TearDown() override {
    if (serving_.joinable()) serving_.join();
  }
  // Serves one request on a thread, replying with an empty ListJobs reply.
  void ServeOne() {
    serving_ = std::thread([this] {
      zmq::pollitem_t item{server_.socket().handle(), 0, ZMQ_POLLIN, 0};
      if (zmq::poll(&item, 1, kGenerous) <= 0) return;
      std::optional<Incoming> in = server_.TryReceive();
      if (!in || !in->envelope.ok()) return;
      seen_ = *in;
      Envelope reply;
      reply.request_id = in->envelope->request_id;
      reply.body = ListJobsRequest{};
      (void)server_.Send(in->peer, reply);
    });
  }

  zmq::context_t context_;
  CurveKeyPair server_keys_ = NewCurveKeyPair();
  ServerChannel server_{context_};
  std::thread serving_;
  std::optional<Incoming> seen_;
  std::atomic<int> refused_{0};
};

TEST_F(CurveChannelTest, PinnedClientIsServedAndLabelledWithItsKey) {
  Start();
  ServeOne();
  CurveKeyPair client_keys = NewCurveKeyPair();
  ClientChannel client(context_, server_.endpoint(), {},
                       {.server_key = server_keys_.public_key, .own_keys = client_keys});
  absl::StatusOr<Envelope> reply = client.Call(Request(ListNodesRequest{}), kGenerous);
  ASSERT_TRUE(reply.ok()) << reply.status();
  serving_.join();
  ASSERT_TRUE(seen_.has_value());
  EXPECT_EQ(seen_->user_id, "curve:" + client_keys.public_key);
  EXPECT_EQ(seen_->envelope->token, "acme-token");
  EXPECT_TRUE(client.handshake_succeeded());
}

TEST_F(CurveChannelTest, ClientPinnedToAnotherKeyFailsAtOnceNamingTheKey) {
  Start();
  const std::string wrong = NewCurveKeyPair().public_key;
  ClientChannel client(context_, server_.endpoint(), {}, {.server_key = wrong});
  absl::StatusOr<Envelope> reply = client.Call(Request(ListNodesRequest{}), kGenerous);
  ASSERT_TRUE(absl::IsUnavailable(reply.status())) << reply.status();
  EXPECT_NE(reply.status().message().find(wrong), std::string::npos) << reply.status();
  EXPECT_NE(reply.status().message().find("--coordinator-key"), std::string::npos);
  EXPECT_EQ(reply.status().message().find("no reply"), std::string::npos) << reply.status();
}

TEST_F(CurveChannelTest, PlainClientGetsNothingFromACurveServer) {
  Start();
  ClientChannel plain(context_, server_.endpoint());
  absl::StatusOr<Envelope> reply = plain.Call(Request(ListNodesRequest{}), milliseconds(300));
  EXPECT_TRUE(absl::IsUnavailable(reply.status())) << reply.status();
  EXPECT_FALSE(server_.TryReceive().has_value());
}

TEST_F(CurveChannelTest, CurveClientOfAPlainServerFailsAtOnce) {
  ServerChannel plain(context_);
  ASSERT_TRUE(plain.Bind("tcp://127.0.0.1:0").ok());
  ClientChannel client(context_, plain.endpoint(), {},
                       {.server_key = server_keys_.public_key});
  absl::StatusOr<Envelope> reply = client.Call(Request(ListNodesRequest{}), kGenerous);
  ASSERT_TRUE(absl::IsUnavailable(reply.status())) << reply.status();
  EXPECT_EQ(reply.status().message().find("no reply"), std::string::npos) << reply.status();
}

TEST_F(CurveChannelTest, ZapRefusalFailsTheClientAndIsReported) {
  Start([](const ZapRequest&) { return std::nullopt; });
  ClientChannel client(context_, server_.endpoint(), {},
                       {.server_key = server_keys_.public_key});
  absl::StatusOr<Envelope> reply = client.Call(Request(ListNodesRequest{}), kGenerous);
  ASSERT_TRUE(absl::IsUnavailable(reply.status())) << reply.status();
  EXPECT_NE(reply.status().message().find("refused"), std::string::npos) << reply.status();
  EXPECT_GE(refused_.load(), 1);
}

TEST_F(CurveChannelTest, SecondZapHandlerInOneContextFailsToStart) {
  Start();
  ServerChannel second(context_);
  absl::Status enabled = second.EnableCurve(NewCurveKeyPair());
  EXPECT_TRUE(absl::IsUnavailable(enabled)) << enabled;
}

}  // namespace
}  // namespace sublet::protocols

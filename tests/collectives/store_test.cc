// The rendezvous store: semantics, waiting, hostile input, and the job
// secret that admits only ranks of the job attempt.
#include "collectives/store.h"

#include <gtest/gtest.h>
#include <sys/socket.h>

#include <cstring>
#include <thread>

#include "collectives/internal/peer_auth.h"
#include "collectives/internal/socket.h"

namespace sublet::collectives {
namespace {

class StoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    StoreLimits limits;
    limits.max_value_bytes = 1024;
    limits.max_total_bytes = 3000;
    auto s = TcpStoreServer::Start("127.0.0.1", 0, limits);
    ASSERT_TRUE(s.ok()) << s.status();
    server_ = std::move(*s);
  }
  std::shared_ptr<TcpStore> Client() {
    auto c = TcpStore::Connect("127.0.0.1", server_->port(), absl::Now() + absl::Seconds(5));
    EXPECT_TRUE(c.ok()) << c.status();
    return c.ok() ? *c : nullptr;
  }
  std::unique_ptr<TcpStoreServer> server_;
};

TEST_F(StoreTest, SetThenGet) {
  auto c = Client();
  ASSERT_TRUE(c->Set("k", std::string("v\0w", 3)).ok());
  auto v = c->Get("k", absl::Now() + absl::Seconds(1));
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(*v, std::string("v\0w", 3));
}

TEST_F(StoreTest, GetWaitsForAnotherClientsSet) {
  auto a = Client(), b = Client();
  std::thread setter([&] { EXPECT_TRUE(b->Set("late", "x").ok()); });
  auto v = a->Get("late", absl::Now() + absl::Seconds(10));
  setter.join();
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_EQ(*v, "x");
}

TEST_F(StoreTest, GetOfMissingKeyTimesOutNamingIt) {
  auto v = Client()->Get("absent", absl::Now() + absl::Milliseconds(50));
  EXPECT_TRUE(absl::IsDeadlineExceeded(v.status())) << v.status();
  EXPECT_NE(v.status().message().find("absent"), std::string::npos);
}

TEST_F(StoreTest, AddCounts) {
  auto c = Client();
  EXPECT_EQ(*c->Add("n", 2), 2);
  EXPECT_EQ(*c->Add("n", 3), 5);
}

TEST_F(StoreTest, PrefixStoreSeparatesNamespaces) {
  std::shared_ptr<Store> base = Client();
  PrefixStore a(base, "a"), b(base, "b");
  ASSERT_TRUE(a.Set("k", "1").ok());
  ASSERT_TRUE(b.Set("k", "2").ok());
  EXPECT_EQ(*a.Get("k", absl::Now() + absl::Seconds(1)), "1");
  EXPECT_EQ(*base->Get("b/k", absl::Now() + absl::Seconds(1)), "2");
}

TEST_F(StoreTest, OversizedValueDropsOnlyThatConnection) {
  auto bad = Client();
  absl::Status s = bad->Set("big", std::string(2048, 'x'));
  EXPECT_FALSE(s.ok());
  auto good = Client();
  EXPECT_TRUE(good->Set("small", "ok").ok());
}

TEST_F(StoreTest, FullStoreRefusesWithResourceExhausted) {
  auto c = Client();
  for (int i = 0; i < 2; ++i) ASSERT_TRUE(c->Set("k" + std::to_string(i), std::string(1000, 'x')).ok());
  absl::Status s = c->Set("k2", std::string(1000, 'x'));
  EXPECT_TRUE(absl::IsResourceExhausted(s)) << s;
}

TEST_F(StoreTest, GarbageAndOversizedKeyAreDropped) {
  auto fd = internal::Connect("127.0.0.1", server_->port(), absl::Now() + absl::Seconds(5), "raw");
  ASSERT_TRUE(fd.ok());
  const char garbage[] = {9, static_cast<char>(0xff), static_cast<char>(0xff),
                          static_cast<char>(0xff), 0x7f};
  ASSERT_TRUE(internal::WriteFull(fd->get(), garbage, sizeof(garbage),
                                  absl::Now() + absl::Seconds(1), "raw").ok());
  char byte;
  absl::Status closed = internal::ReadFull(fd->get(), &byte, 1, absl::Now() + absl::Seconds(5), "raw");
  EXPECT_TRUE(absl::IsUnavailable(closed)) << closed;  // the server hung up
  EXPECT_TRUE(Client()->Set("still", "up").ok());
}

// ---------------------------------------------------------------- job secret

const std::string kSecret(32, '\x11');
const std::string kOtherSecret(32, '\x22');

std::string SetRequest(const std::string& key, const std::string& value) {
  std::string r(1, '\x01');
  uint32_t n = static_cast<uint32_t>(key.size());
  r.append(reinterpret_cast<const char*>(&n), 4).append(key);
  n = static_cast<uint32_t>(value.size());
  return r.append(reinterpret_cast<const char*>(&n), 4).append(value);
}

class AuthStoreTest : public ::testing::Test {
 protected:
  void SetUp() override { server_ = StartServer(StoreLimits{}, kSecret); }
  static std::unique_ptr<TcpStoreServer> StartServer(StoreLimits limits, std::string_view secret) {
    auto s = TcpStoreServer::Start("127.0.0.1", 0, limits, secret);
    EXPECT_TRUE(s.ok()) << s.status();
    return s.ok() ? std::move(*s) : nullptr;
  }
  absl::StatusOr<std::shared_ptr<TcpStore>> Client(std::string_view secret,
                                                   absl::Duration wait = absl::Seconds(10)) {
    return TcpStore::Connect("127.0.0.1", server_->port(), absl::Now() + wait, nullptr,
                             absl::Seconds(30), secret);
  }
  // A raw connection that has read the store's challenge; `nonce` gets Ns.
  internal::Fd Stranger(internal::Nonce* nonce = nullptr) {
    auto fd =
        internal::Connect("127.0.0.1", server_->port(), absl::Now() + absl::Seconds(10), "raw");
    EXPECT_TRUE(fd.ok()) << fd.status();
    if (!fd.ok()) return internal::Fd();
    uint8_t challenge[internal::kChallengeBytes];
    EXPECT_TRUE(internal::ReadFull(fd->get(), challenge, sizeof(challenge),
                                   absl::Now() + absl::Seconds(10), "raw")
                    .ok());
    EXPECT_EQ(challenge[0], internal::kChallengeMarker);
    if (nonce) memcpy(nonce->data(), challenge + 1, nonce->size());
    return std::move(*fd);
  }
  static void Send(const internal::Fd& fd, const std::string& bytes) {
    ASSERT_TRUE(internal::WriteFull(fd.get(), bytes.data(), bytes.size(),
                                    absl::Now() + absl::Seconds(10), "raw")
                    .ok());
  }
  // The server closes the connection without sending another byte.
  static void ExpectHungUpOn(const internal::Fd& fd) {
    char byte;
    absl::Status s = internal::ReadFull(fd.get(), &byte, 1, absl::Now() + absl::Seconds(30), "raw");
    EXPECT_TRUE(absl::IsUnavailable(s)) << s;
  }
  // Whether `key` is in the store now, asked by a rank that has the secret.
  bool Visible(const std::string& key) {
    auto rank = Client(kSecret);
    EXPECT_TRUE(rank.ok()) << rank.status();
    return rank.ok() && (*rank)->Get(key, absl::Now()).ok();
  }
  std::unique_ptr<TcpStoreServer> server_;
};

TEST_F(AuthStoreTest, ServesAClientWithTheSameSecret) {
  auto c = Client(kSecret);
  ASSERT_TRUE(c.ok()) << c.status();
  ASSERT_TRUE((*c)->Set("k", "v").ok());
  EXPECT_EQ(*(*c)->Get("k", absl::Now() + absl::Seconds(1)), "v");
  EXPECT_EQ(*(*c)->Add("n", 4), 4);
}

TEST_F(AuthStoreTest, RefusesAClientWithAnotherSecretNamingTheStore) {
  auto c = Client(kOtherSecret);
  EXPECT_TRUE(absl::IsPermissionDenied(c.status())) << c.status();
  EXPECT_NE(c.status().message().find("rendezvous store at 127.0.0.1:"), std::string::npos)
      << c.status();
}

TEST_F(AuthStoreTest, ClientWithoutSecretCannotReadARanksKey) {
  auto rank = Client(kSecret);
  ASSERT_TRUE(rank.ok()) << rank.status();
  ASSERT_TRUE((*rank)->Set("mesh/0", "10.0.0.1:9000").ok());
  auto outsider = Client("");
  ASSERT_TRUE(outsider.ok()) << outsider.status();  // no handshake to fail yet
  auto got = (*outsider)->Get("mesh/0", absl::Now() + absl::Seconds(10));
  EXPECT_TRUE(absl::IsPermissionDenied(got.status())) << got.status();
  EXPECT_NE(got.status().message().find("SUBLET_JOB_SECRET"), std::string::npos) << got.status();
}

TEST_F(AuthStoreTest, StrangerSendingGarbageIsDroppedBeforeItsRequest) {
  internal::Fd s = Stranger();
  Send(s, std::string(internal::kNonceBytes + internal::kTagBytes, '\x7f') +
              SetRequest("planted", "x"));
  ExpectHungUpOn(s);
  EXPECT_FALSE(Visible("planted"));
}

// A proof made with the secret for one challenge (what a stranger could
// replay from a rank's connection) does not answer another challenge.
TEST_F(AuthStoreTest, ProofForAnotherChallengeIsDropped) {
  internal::Nonce first_ns, nc{};
  internal::Fd first = Stranger(&first_ns);
  internal::Fd second = Stranger();
  internal::PeerAuth auth{kSecret, internal::AuthPurpose::kStore, "", "test"};
  const internal::Tag tag = internal::ConnectorTag(auth, first_ns, nc);
  Send(second, std::string(nc.begin(), nc.end()) + std::string(tag.begin(), tag.end()) +
                   SetRequest("replayed", "x"));
  ExpectHungUpOn(second);
  EXPECT_FALSE(Visible("replayed"));
}

TEST_F(AuthStoreTest, SilentStrangerDoesNotHoldUpRealClients) {
  internal::Fd silent = Stranger();
  auto c = Client(kSecret);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_TRUE((*c)->Set("k", "v").ok());
  EXPECT_EQ(*(*c)->Get("k", absl::Now() + absl::Seconds(1)), "v");
}

TEST_F(AuthStoreTest, HandshakingConnectionsCountAgainstTheConnectionLimit) {
  StoreLimits one;
  one.max_connections = 1;
  server_ = StartServer(one, kSecret);
  internal::Fd silent = Stranger();  // accepted: it holds the one slot
  auto c = Client(kSecret);
  EXPECT_TRUE(absl::IsUnavailable(c.status())) << c.status();
}

TEST_F(AuthStoreTest, ClientWithSecretTimesOutOnAStoreWithoutOne) {
  server_ = StartServer(StoreLimits{}, "");
  auto c = Client(kSecret, absl::Milliseconds(200));
  EXPECT_TRUE(absl::IsDeadlineExceeded(c.status())) << c.status();
  EXPECT_NE(c.status().message().find("job-secret challenge"), std::string::npos) << c.status();
}

TEST(AuthStore, SecretOfTheWrongSizeIsInvalidArgument) {
  auto s = TcpStoreServer::Start("127.0.0.1", 0, StoreLimits{}, std::string(16, 'x'));
  EXPECT_TRUE(absl::IsInvalidArgument(s.status())) << s.status();
}

}  // namespace
}  // namespace sublet::collectives

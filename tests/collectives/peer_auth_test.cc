// The job-secret challenge-response on its own, over a socketpair: both
// sides succeed only with the same secret, purpose and context, and a peer
// that fakes its half is refused.
#include "collectives/internal/peer_auth.h"

#include <gtest/gtest.h>
#include <sys/socket.h>

#include <cstring>
#include <future>
#include <string>

#include "collectives/internal/socket.h"

namespace sublet::collectives::internal {
namespace {

const std::string kSecret(32, 's');
const std::string kOtherSecret(32, 'o');

struct Pair {
  Pair() {
    int fds[2];
    EXPECT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
    acceptor = Fd(fds[0]);
    connector = Fd(fds[1]);
  }
  Fd acceptor, connector;
};

absl::Time Soon() { return absl::Now() + absl::Seconds(10); }

PeerAuth Auth(const std::string& secret, std::string_view context = "ctx",
              AuthPurpose purpose = AuthPurpose::kMesh) {
  return PeerAuth{secret, purpose, context, "peer"};
}

// Runs both sides at once; returns {acceptor status, connector status}.
std::pair<absl::Status, absl::Status> Handshake(const PeerAuth& acceptor,
                                                const PeerAuth& connector) {
  Pair p;
  auto accepted = std::async(std::launch::async, [&] {
    absl::Status s = ChallengeConnector(p.acceptor.get(), acceptor, Soon());
    p.acceptor.Reset();  // as the servers do: a refused peer is hung up on
    return s;
  });
  absl::Status connected = AnswerChallenge(p.connector.get(), connector, "", Soon());
  return {accepted.get(), connected};
}

TEST(PeerAuth, SameSecretAndContextSucceedBothWays) {
  auto [accepted, connected] = Handshake(Auth(kSecret), Auth(kSecret));
  EXPECT_TRUE(accepted.ok()) << accepted;
  EXPECT_TRUE(connected.ok()) << connected;
}

TEST(PeerAuth, AcceptorRefusesAConnectorWithAnotherSecret) {
  auto [accepted, connected] = Handshake(Auth(kSecret), Auth(kOtherSecret));
  EXPECT_TRUE(absl::IsPermissionDenied(accepted)) << accepted;
  EXPECT_TRUE(absl::IsPermissionDenied(connected)) << connected;
  EXPECT_NE(connected.message().find("hung up on our job-secret proof"), std::string::npos)
      << connected;
}

TEST(PeerAuth, ConnectorRefusesAnAcceptorWithAnotherSecret) {
  auto [accepted, connected] = Handshake(Auth(kOtherSecret), Auth(kSecret));
  EXPECT_TRUE(absl::IsPermissionDenied(accepted)) << accepted;
  EXPECT_TRUE(absl::IsPermissionDenied(connected)) << connected;
}

TEST(PeerAuth, DifferentContextOrPurposeIsRefused) {
  auto [ctx_accepted, ctx_connected] = Handshake(Auth(kSecret, "rank 1"), Auth(kSecret, "rank 2"));
  EXPECT_TRUE(absl::IsPermissionDenied(ctx_accepted)) << ctx_accepted;
  EXPECT_FALSE(ctx_connected.ok());
  auto [purpose_accepted, purpose_connected] =
      Handshake(Auth(kSecret, "c", AuthPurpose::kStore), Auth(kSecret, "c", AuthPurpose::kMesh));
  EXPECT_TRUE(absl::IsPermissionDenied(purpose_accepted)) << purpose_accepted;
  EXPECT_FALSE(purpose_connected.ok());
}

// An acceptor without the secret that answers with something it can get,
// the connector's own tag sent back, or a made-up one: both are refused.
TEST(PeerAuth, ConnectorRefusesAReflectedOrForgedAcceptorTag) {
  for (bool reflect : {true, false}) {
    Pair p;
    auto fake = std::async(std::launch::async, [&] {
      uint8_t challenge[kChallengeBytes] = {kChallengeMarker, 1, 2, 3};
      uint8_t proof[kNonceBytes + kTagBytes];
      if (!WriteFull(p.acceptor.get(), challenge, sizeof(challenge), Soon(), "fake").ok()) return;
      if (!ReadFull(p.acceptor.get(), proof, sizeof(proof), Soon(), "fake").ok()) return;
      uint8_t reply[kTagBytes];
      memset(reply, 0x5a, sizeof(reply));
      if (reflect) memcpy(reply, proof + kNonceBytes, kTagBytes);
      (void)WriteFull(p.acceptor.get(), reply, sizeof(reply), Soon(), "fake");
    });
    absl::Status s = AnswerChallenge(p.connector.get(), Auth(kSecret), "", Soon());
    fake.get();
    EXPECT_TRUE(absl::IsPermissionDenied(s)) << s;
    EXPECT_NE(s.message().find("peer: the peer failed the job-secret challenge"), std::string::npos)
        << s;
  }
}

TEST(PeerAuth, ConnectorRefusesAPeerThatSendsNoChallenge) {
  Pair p;
  const char not_a_challenge[kChallengeBytes] = {0};  // e.g. a store's "ok" reply
  ASSERT_TRUE(
      WriteFull(p.acceptor.get(), not_a_challenge, sizeof(not_a_challenge), Soon(), "x").ok());
  absl::Status s = AnswerChallenge(p.connector.get(), Auth(kSecret), "", Soon());
  EXPECT_TRUE(absl::IsPermissionDenied(s)) << s;
  EXPECT_NE(s.message().find("sent no job-secret challenge"), std::string::npos) << s;
}

TEST(PeerAuth, SecretOfTheWrongSizeIsInvalid) {
  EXPECT_TRUE(CheckSecretSize("", "x").ok());
  EXPECT_TRUE(CheckSecretSize(kSecret, "x").ok());
  EXPECT_TRUE(absl::IsInvalidArgument(CheckSecretSize(std::string(31, 'a'), "x")));
}

}  // namespace
}  // namespace sublet::collectives::internal

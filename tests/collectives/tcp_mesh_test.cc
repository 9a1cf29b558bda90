// The host backend's TCP mesh under a job secret: strangers, impostors and
// hellos claiming another rank are dropped, and the real ranks still connect.
#include "collectives/host/tcp_mesh.h"

#include <gtest/gtest.h>

#include <cstring>
#include <future>
#include <thread>

#include "collectives/internal/peer_auth.h"
#include "collectives/internal/socket.h"
#include "tests/collectives/rank_threads.h"

namespace sublet::collectives {
namespace {

using host::TcpMesh;
using internal::Fd;
using MeshOr = absl::StatusOr<std::unique_ptr<TcpMesh>>;

const std::string kSecret(32, '\x33');
const std::string kOtherSecret(32, '\x44');

absl::Time Soon() { return absl::Now() + absl::Seconds(30); }

std::string U32(int v) {
  int32_t x = v;
  return std::string(reinterpret_cast<const char*>(&x), 4);
}

class MeshTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto s = TcpStoreServer::Start("127.0.0.1", 0, StoreLimits{}, kSecret);
    ASSERT_TRUE(s.ok()) << s.status();
    server_ = std::move(*s);
  }
  std::shared_ptr<TcpStore> RankStore() {
    auto c = TcpStore::Connect("127.0.0.1", server_->port(), Soon(), nullptr, absl::Seconds(30),
                               kSecret);
    EXPECT_TRUE(c.ok()) << c.status();
    return c.ok() ? *c : nullptr;
  }
  // Rank `rank` of `size` joins the mesh on a thread of its own.
  std::future<MeshOr> Join(int rank, int size, const std::string& mesh_secret) {
    std::shared_ptr<TcpStore> store = RankStore();
    return std::async(std::launch::async, [store, rank, size, mesh_secret] {
      return TcpMesh::Connect(*store, rank, size, Soon(), mesh_secret);
    });
  }
  // A raw connection to `rank`'s mesh listener (address from the store).
  Fd ConnectToRank(int rank) {
    auto addr = RankStore()->Get("mesh/" + std::to_string(rank), Soon());
    EXPECT_TRUE(addr.ok()) << addr.status();
    std::string host;
    int port = 0;
    EXPECT_TRUE(internal::ParseHostPort(addr.value_or(""), &host, &port).ok());
    auto fd = internal::Connect(host, port, Soon(), "stranger");
    EXPECT_TRUE(fd.ok()) << fd.status();
    return fd.ok() ? std::move(*fd) : Fd();
  }
  static internal::Nonce ReadChallenge(const Fd& fd) {
    uint8_t challenge[internal::kChallengeBytes] = {};
    EXPECT_TRUE(
        internal::ReadFull(fd.get(), challenge, sizeof(challenge), Soon(), "stranger").ok());
    EXPECT_EQ(challenge[0], internal::kChallengeMarker);
    internal::Nonce ns;
    memcpy(ns.data(), challenge + 1, ns.size());
    return ns;
  }
  static void ExpectHungUpOn(const Fd& fd) {
    char byte;
    absl::Status s = internal::ReadFull(fd.get(), &byte, 1, Soon(), "stranger");
    EXPECT_TRUE(absl::IsUnavailable(s)) << s;
  }
  std::unique_ptr<TcpStoreServer> server_;
};

// Every pair of meshes carries bytes between the two ranks.
void ExpectConnected(std::vector<MeshOr>& meshes) {
  for (auto& m : meshes) ASSERT_TRUE(m.ok()) << m.status();
  for (size_t a = 0; a < meshes.size(); ++a) {
    for (size_t b = a + 1; b < meshes.size(); ++b) {
      int32_t word = static_cast<int32_t>(10 * a + b), got = -1;
      ASSERT_TRUE(internal::WriteFull((*meshes[a])->fd(b), &word, 4, Soon(), "a").ok());
      ASSERT_TRUE(internal::ReadFull((*meshes[b])->fd(a), &got, 4, Soon(), "b").ok());
      EXPECT_EQ(got, word);
    }
  }
}

TEST_F(MeshTest, StrangersAreDroppedAndTheRealRanksStillConnect) {
  std::future<MeshOr> rank1 = Join(1, 2, kSecret);
  Fd silent = ConnectToRank(1);  // connects and never says a word
  Fd forger = ConnectToRank(1);
  ReadChallenge(forger);
  const std::string forged = U32(0) + std::string(internal::kNonceBytes + internal::kTagBytes, 'f');
  ASSERT_TRUE(internal::WriteFull(forger.get(), forged.data(), forged.size(), Soon(), "f").ok());
  ExpectHungUpOn(forger);
  std::future<MeshOr> rank0 = Join(0, 2, kSecret);
  std::vector<MeshOr> meshes;
  meshes.push_back(rank0.get());
  meshes.push_back(rank1.get());
  ExpectConnected(meshes);
}

// A proof made with the secret for rank 1's hello does not let a connection
// pose as rank 0: the context binds the connecting rank's number.
TEST_F(MeshTest, HelloProvenForOneRankCannotClaimAnother) {
  std::future<MeshOr> rank2 = Join(2, 3, kSecret);
  Fd poser = ConnectToRank(2);
  const internal::Nonce ns = ReadChallenge(poser);
  const internal::Nonce nc{};
  const std::string context = U32(1) + U32(2) + U32(3);
  internal::PeerAuth auth{kSecret, internal::AuthPurpose::kMesh, context, "test"};
  const internal::Tag tag = internal::ConnectorTag(auth, ns, nc);
  const std::string hello =
      U32(0) + std::string(nc.begin(), nc.end()) + std::string(tag.begin(), tag.end());
  ASSERT_TRUE(internal::WriteFull(poser.get(), hello.data(), hello.size(), Soon(), "p").ok());
  ExpectHungUpOn(poser);
  std::future<MeshOr> rank0 = Join(0, 3, kSecret), rank1 = Join(1, 3, kSecret);
  std::vector<MeshOr> meshes;
  meshes.push_back(rank0.get());
  meshes.push_back(rank1.get());
  meshes.push_back(rank2.get());
  ExpectConnected(meshes);
}

// An impostor that got into the store (it cannot without the secret; here
// it is handed a connection) still cannot join the mesh with another secret.
TEST_F(MeshTest, RankWithAnotherSecretCannotJoin) {
  std::future<MeshOr> rank1 = Join(1, 2, kSecret);
  MeshOr impostor = Join(0, 2, kOtherSecret).get();
  EXPECT_TRUE(absl::IsPermissionDenied(impostor.status())) << impostor.status();
  EXPECT_NE(impostor.status().message().find("rank 1"), std::string::npos) << impostor.status();
  std::vector<MeshOr> meshes;
  meshes.push_back(Join(0, 2, kSecret).get());
  meshes.push_back(rank1.get());
  ExpectConnected(meshes);
}

TEST_F(MeshTest, ConnectorRefusesAnAcceptorThatCannotProveTheSecret) {
  int port = 0;
  auto listener = internal::Listen("127.0.0.1", 0, &port);
  ASSERT_TRUE(listener.ok()) << listener.status();
  ASSERT_TRUE(RankStore()->Set("mesh/1", "127.0.0.1:" + std::to_string(port)).ok());
  std::thread fake_rank1([&] {  // challenges, then answers with a made-up tag
    auto conn = internal::Accept(listener->get(), Soon(), "fake");
    ASSERT_TRUE(conn.ok()) << conn.status();
    const uint8_t challenge[internal::kChallengeBytes] = {internal::kChallengeMarker};
    uint8_t hello[4 + internal::kNonceBytes + internal::kTagBytes];
    ASSERT_TRUE(internal::WriteFull(conn->get(), challenge, sizeof(challenge), Soon(), "f").ok());
    ASSERT_TRUE(internal::ReadFull(conn->get(), hello, sizeof(hello), Soon(), "f").ok());
    const std::string tag(internal::kTagBytes, 't');
    ASSERT_TRUE(internal::WriteFull(conn->get(), tag.data(), tag.size(), Soon(), "f").ok());
    char byte;
    (void)internal::ReadFull(conn->get(), &byte, 1, Soon(), "f");  // until rank 0 hangs up
  });
  MeshOr rank0 = Join(0, 2, kSecret).get();
  fake_rank1.join();
  EXPECT_TRUE(absl::IsPermissionDenied(rank0.status())) << rank0.status();
  EXPECT_NE(rank0.status().message().find("connect: rank 1 (tcp) at 127.0.0.1:"), std::string::npos)
      << rank0.status();
  EXPECT_NE(rank0.status().message().find("failed the job-secret challenge"), std::string::npos)
      << rank0.status();
}

// The whole host backend with a secret, including the hierarchical layout's
// node-local and cross-node meshes.
TEST(JobSecret, HostCommunicatorAllReducesWithTheSecretOnEveryMesh) {
  testing::RunRanks(
      4, testing::Layout::kTwoNodes, testing::TestOptions(),
      [](Communicator& c) {
        std::vector<int64_t> v(1000, c.rank() + 1);
        ASSERT_TRUE(c.AllReduce(v.data(), v.data(), v.size(), DataType::kI64, ReduceOp::kSum).ok());
        EXPECT_EQ(v[999], 10);
        EXPECT_EQ(c.backend_name(), "host(shm+tcp)");
      },
      kSecret);
}

}  // namespace
}  // namespace sublet::collectives

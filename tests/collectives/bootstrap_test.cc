// Rank environment parsing (Sublet worker and mpirun), the backend refusals,
// and ranks as real processes sharing memory.
#include "collectives/bootstrap.h"

#include <gtest/gtest.h>
#include <poll.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sys/socket.h>

#include <algorithm>
#include <map>
#include <thread>
#include <vector>

#include "collectives/internal/socket.h"
#include "collectives/nccl/nccl_backend.h"

namespace sublet::collectives {
namespace {

GetenvFn Env(std::map<std::string, std::string> vars) {
  auto shared = std::make_shared<std::map<std::string, std::string>>(std::move(vars));
  return [shared](const char* name) -> const char* {
    auto it = shared->find(name);
    return it == shared->end() ? nullptr : it->second.c_str();
  };
}

TEST(RankInfo, ReadsTheSubletWorkerEnvironment) {
  auto info = RankInfoFromEnv(Env({{"SUBLET_RANK", "3"}, {"SUBLET_WORLD_SIZE", "4"},
                                   {"SUBLET_NODE_NAME", "node-b"},
                                   {"SUBLET_RENDEZVOUS", "10.0.0.1:7800"}}));
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->rank, 3);
  EXPECT_EQ(info->size, 4);
  EXPECT_EQ(info->node, "node-b");
  EXPECT_EQ(info->rendezvous, "10.0.0.1:7800");
  EXPECT_FALSE(info->under_mpi);
}

TEST(RankInfo, ReadsOpenMpisEnvironment) {
  auto info = RankInfoFromEnv(Env({{"OMPI_COMM_WORLD_RANK", "1"}, {"OMPI_COMM_WORLD_SIZE", "2"}}));
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->rank, 1);
  EXPECT_TRUE(info->under_mpi);
  EXPECT_FALSE(info->node.empty());  // the host name
}

TEST(RankInfo, RejectsMissingOrBadValuesNamingTheVariable) {
  auto none = RankInfoFromEnv(Env({}));
  EXPECT_TRUE(absl::IsFailedPrecondition(none.status()));
  auto bad = RankInfoFromEnv(Env({{"SUBLET_RANK", "x"}, {"SUBLET_WORLD_SIZE", "2"}}));
  EXPECT_NE(bad.status().message().find("SUBLET_RANK"), std::string::npos);
  auto outside = RankInfoFromEnv(Env({{"SUBLET_RANK", "2"}, {"SUBLET_WORLD_SIZE", "2"},
                                      {"SUBLET_RENDEZVOUS", "h:1"}}));
  EXPECT_TRUE(absl::IsInvalidArgument(outside.status()));
  auto no_store = RankInfoFromEnv(Env({{"SUBLET_RANK", "0"}, {"SUBLET_WORLD_SIZE", "2"}}));
  EXPECT_NE(no_store.status().message().find("SUBLET_RENDEZVOUS"), std::string::npos);
}

std::map<std::string, std::string> WorkerEnv(std::string secret) {
  return {{"SUBLET_RANK", "0"},
          {"SUBLET_WORLD_SIZE", "1"},
          {"SUBLET_RENDEZVOUS", "h:1"},
          {"SUBLET_JOB_SECRET", std::move(secret)}};
}

TEST(RankInfo, DecodesTheJobSecret) {
  std::string hex, raw;
  for (int i = 0; i < 32; ++i) {
    const char digits[] = "0123456789abcdef";
    hex += {digits[(i * 7 + 3) >> 4 & 15], digits[(i * 7 + 3) & 15]};
    raw += static_cast<char>(i * 7 + 3);
  }
  auto info = RankInfoFromEnv(Env(WorkerEnv(hex)));
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->secret, raw);
}

TEST(RankInfo, AbsentOrEmptyJobSecretMeansNone) {
  auto empty = RankInfoFromEnv(Env(WorkerEnv("")));
  ASSERT_TRUE(empty.ok()) << empty.status();
  EXPECT_TRUE(empty->secret.empty());
  auto absent =
      RankInfoFromEnv(Env({{"OMPI_COMM_WORLD_RANK", "0"}, {"OMPI_COMM_WORLD_SIZE", "1"}}));
  ASSERT_TRUE(absent.ok()) << absent.status();
  EXPECT_TRUE(absent->secret.empty());
}

TEST(RankInfo, RejectsAMalformedJobSecretWithoutEchoingIt) {
  const std::string good(64, 'a');
  for (const std::string& bad : {good.substr(1), good + "a", "G" + good.substr(1),
                                 "A" + good.substr(1), "z" + good.substr(1)}) {
    auto info = RankInfoFromEnv(Env(WorkerEnv(bad)));
    EXPECT_TRUE(absl::IsInvalidArgument(info.status())) << info.status();
    EXPECT_NE(info.status().message().find("SUBLET_JOB_SECRET"), std::string::npos);
    EXPECT_EQ(info.status().message().find(bad.substr(0, 16)), std::string::npos) << info.status();
  }
}

// Ranks as threads, bootstrapped as under the Sublet worker with a job
// secret: the store and the TCP mesh both admit them.
TEST(RankInfo, RanksWithTheSameJobSecretFormACommunicator) {
  const int world = 2;
  int port = 0;
  {  // a port that was free a moment ago; rank 0's store binds it
    auto probe = internal::Listen("127.0.0.1", 0, &port);
    ASSERT_TRUE(probe.ok());
  }
  std::vector<std::thread> ranks;
  for (int r = 0; r < world; ++r) {
    ranks.emplace_back([&, r] {
      auto info = RankInfoFromEnv(Env({{"SUBLET_RANK", std::to_string(r)},
                                       {"SUBLET_WORLD_SIZE", std::to_string(world)},
                                       {"SUBLET_NODE_NAME", "n" + std::to_string(r)},
                                       {"SUBLET_RENDEZVOUS", "127.0.0.1:" + std::to_string(port)},
                                       {"SUBLET_JOB_SECRET", std::string(64, 'c')}}));
      ASSERT_TRUE(info.ok()) << info.status();
      CommunicatorOptions o;
      o.backend = BackendKind::kHost;
      o.timeout = absl::Seconds(30);
      auto comm = CreateCommunicator(*info, o);
      ASSERT_TRUE(comm.ok()) << comm.status();
      int64_t v = r + 1;
      ASSERT_TRUE((*comm)->AllReduce(&v, &v, 1, DataType::kI64, ReduceOp::kSum).ok());
      EXPECT_EQ(v, 3);
      EXPECT_EQ((*comm)->backend_name(), "host(tcp)");
    });
  }
  for (auto& t : ranks) t.join();
}

TEST(Backends, NcclIsRefusedWithAReasonWithoutADevice) {
  auto devices = nccl::CudaDeviceCount();
  if (devices.ok()) GTEST_SKIP() << "a CUDA device exists here";
  RankInfo info;
  info.rendezvous = "127.0.0.1:1";
  CommunicatorOptions o;
  o.backend = BackendKind::kNccl;
  auto comm = CreateCommunicator(info, o);
  EXPECT_TRUE(absl::IsFailedPrecondition(comm.status())) << comm.status();
  EXPECT_NE(comm.status().message().find("nccl backend"), std::string::npos);
  std::cout << "nccl: skipped, " << comm.status().message() << "\n";
}

TEST(Backends, MpiIsRefusedOutsideMpirun) {
  RankInfo info;
  CommunicatorOptions o;
  o.backend = BackendKind::kMpi;
  EXPECT_TRUE(absl::IsFailedPrecondition(CreateCommunicator(info, o).status()));
}

// Ranks as forked processes, bootstrapped exactly as under the Sublet worker
// (environment + SUBLET_RENDEZVOUS), all on one node: shared memory across
// address spaces.
TEST(Processes, ThreeProcessesAllReduceThroughSharedMemory) {
  const int world = 3;
  int port = 0;
  {  // a port that was free a moment ago; rank 0's store binds it
    auto probe = internal::Listen("127.0.0.1", 0, &port);
    ASSERT_TRUE(probe.ok());
  }
  const std::string rendezvous = "127.0.0.1:" + std::to_string(port);
  std::vector<pid_t> children;
  for (int r = 0; r < world; ++r) {
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      auto info = RankInfoFromEnv(Env({{"SUBLET_RANK", std::to_string(r)},
                                       {"SUBLET_WORLD_SIZE", std::to_string(world)},
                                       {"SUBLET_NODE_NAME", "n0"},
                                       {"SUBLET_RENDEZVOUS", rendezvous}}));
      CommunicatorOptions o;
      o.backend = BackendKind::kHost;
      o.timeout = absl::Seconds(30);
      o.shm_slot_bytes = 4096;
      auto comm = info.ok() ? CreateCommunicator(*info, o) : info.status();
      if (!comm.ok()) _exit(2);
      std::vector<double> v(10007, r + 1.0);
      if (!(*comm)->AllReduce(v.data(), v.data(), v.size(), DataType::kF64, ReduceOp::kSum).ok()) {
        _exit(3);
      }
      for (double x : v) {
        if (x != 6.0) _exit(4);
      }
      if ((*comm)->backend_name() != "host(shm)") _exit(5);
      if (!(*comm)->Barrier().ok()) _exit(6);
      _exit(0);
    }
    children.push_back(pid);
  }
  for (pid_t pid : children) {
    int status = 0;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    EXPECT_TRUE(WIFEXITED(status));
    EXPECT_EQ(WEXITSTATUS(status), 0);
  }
}

// A large exchange raises the receive low-water mark while it waits (fewer
// wake-ups); the socket's other users must find the default afterwards, or a
// later short read would wait for bytes that never come.
TEST(Sockets, SendRecvExchangesMegabytesAndRestoresTheLowWaterMark) {
  int port = 0;
  auto listener = internal::Listen("127.0.0.1", 0, &port);
  ASSERT_TRUE(listener.ok()) << listener.status();
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  auto a = internal::Connect("127.0.0.1", port, deadline, "a");
  ASSERT_TRUE(a.ok()) << a.status();
  auto b = internal::Accept(listener->get(), deadline, "b");
  ASSERT_TRUE(b.ok()) << b.status();
  const size_t n = 3 << 20;
  std::vector<char> out_a(n, 'a'), out_b(n, 'b'), in_a(n), in_b(n);
  // The peer holds its side of the exchange until `a` waits with its mark
  // raised: `a` cannot finish without the peer's bytes, so it must wait, and
  // the raise is always observed (a fast exchange that never waits would
  // otherwise leave nothing to observe).
  int peer_saw_mark = 1;
  std::thread peer([&] {
    while (absl::Now() < deadline) {
      socklen_t len = sizeof(peer_saw_mark);
      getsockopt(a->get(), SOL_SOCKET, SO_RCVLOWAT, &peer_saw_mark, &len);
      if (peer_saw_mark > 1) break;
      pollfd none{-1, 0, 0};
      poll(&none, 1, 1);  // the condition has no fd to wait on: re-check each ms
    }
    EXPECT_TRUE(internal::SendRecv(b->get(), out_b.data(), n, "to a", b->get(), in_b.data(), n,
                                   "from a", deadline)
                    .ok());
  });
  size_t seen = 0;
  int highest_mark = 0;  // while the exchange waits
  const absl::Status status = internal::SendRecv(
      a->get(), out_a.data(), n, "to b", a->get(), in_a.data(), n, "from b", deadline,
      [&](size_t got) {
        seen = got;
        int lowat = 0;
        socklen_t len = sizeof(lowat);
        getsockopt(a->get(), SOL_SOCKET, SO_RCVLOWAT, &lowat, &len);
        highest_mark = std::max(highest_mark, lowat);
      });
  peer.join();
  ASSERT_TRUE(status.ok()) << status;
  EXPECT_EQ(in_a, out_b);
  EXPECT_EQ(in_b, out_a);
  EXPECT_EQ(seen, n);
  EXPECT_GT(peer_saw_mark, 1) << "the exchange never raised its mark while waiting";
  EXPECT_GT(highest_mark, 1);
  for (int fd : {a->get(), b->get()}) {
    int lowat = 0;
    socklen_t len = sizeof(lowat);
    ASSERT_EQ(getsockopt(fd, SOL_SOCKET, SO_RCVLOWAT, &lowat, &len), 0);
    EXPECT_EQ(lowat, 1);
  }
  // A 4-byte read still completes.
  int32_t word = 7;
  ASSERT_TRUE(internal::WriteFull(b->get(), &word, 4, deadline, "word").ok());
  int32_t got = 0;
  ASSERT_TRUE(internal::ReadFull(a->get(), &got, 4, deadline, "word").ok());
  EXPECT_EQ(got, 7);
}

}  // namespace
}  // namespace sublet::collectives

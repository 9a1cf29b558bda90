// Runs a group of host-backend ranks as threads of the test process: starts a
// rendezvous store, gives each thread its own connection and Communicator,
// and runs `body` on every rank.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "collectives/bootstrap.h"
#include "collectives/store.h"

namespace sublet::collectives::testing {

// How ranks map to nodes: all on one node (shared memory), one node each
// (TCP ring), or two nodes (mixed).
enum class Layout { kOneNode, kNodePerRank, kTwoNodes };

inline std::string NodeOf(Layout layout, int rank) {
  switch (layout) {
    case Layout::kOneNode: return "n0";
    case Layout::kNodePerRank: return "n" + std::to_string(rank);
    case Layout::kTwoNodes: return "n" + std::to_string(rank % 2);
  }
  return "n0";
}

inline CommunicatorOptions TestOptions() {
  CommunicatorOptions o;
  o.backend = BackendKind::kHost;
  o.timeout = absl::Seconds(60);
  o.shm_slot_bytes = 64 << 10;      // many rounds even for modest sizes
  o.tcp_segment_bytes = 16 << 10;
  o.shm_spin = absl::Microseconds(20);  // up to 4 ranks on 2 cores: sleep early
  return o;
}

// `secret`: the job secret the store and the mesh demand (empty: none).
inline void RunRanks(int world, Layout layout, const CommunicatorOptions& options,
                     const std::function<void(Communicator&)>& body,
                     const std::string& secret = "") {
  auto server = TcpStoreServer::Start("127.0.0.1", 0, {}, secret);
  ASSERT_TRUE(server.ok()) << server.status();
  const int port = (*server)->port();
  std::vector<std::thread> threads;
  for (int r = 0; r < world; ++r) {
    threads.emplace_back([&, r] {
      auto store = TcpStore::Connect("127.0.0.1", port, absl::Now() + absl::Seconds(10), nullptr,
                                     absl::Seconds(30), secret);
      ASSERT_TRUE(store.ok()) << store.status();
      auto comm = CreateHostCommunicator(*store, r, world, NodeOf(layout, r), options, secret);
      ASSERT_TRUE(comm.ok()) << comm.status();
      body(**comm);
    });
  }
  for (auto& t : threads) t.join();
}

}  // namespace sublet::collectives::testing

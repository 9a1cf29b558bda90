// A stand-in training rank for end-to-end tests: bootstraps a communicator
// from the environment the worker gives it (SUBLET_RENDEZVOUS etc.) and runs
// ITERS all-reduces, checking the sums. With STRAGGLER set, that rank stops
// before the second all-reduce and never arrives (a hung peer): the others
// must fail with DeadlineExceeded naming the operation and the peer.
// COLLECTIVE_TIMEOUT_S overrides the collective (and bootstrap) timeout, 3 s.
// With COLLECTIVE_GATE=PATH, each rank creates PATH.ready-RANK once its
// communicator exists and waits until PATH exists before the all-reduces.
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "collectives/bootstrap.h"

int main(int argc, char** argv) {
  using namespace sublet::collectives;
  if (argc < 2) {
    std::fprintf(stderr, "usage: collective_rank ITERS [STRAGGLER_RANK]\n");
    return 2;
  }
  const int iters = std::atoi(argv[1]);
  const int straggler = argc > 2 ? std::atoi(argv[2]) : -1;
  auto info = RankInfoFromEnv(std::getenv);
  if (!info.ok()) {
    std::fprintf(stderr, "%s\n", info.status().ToString().c_str());
    return 2;
  }
  CommunicatorOptions options;
  options.backend = BackendKind::kHost;
  const char* timeout = std::getenv("COLLECTIVE_TIMEOUT_S");
  options.timeout = absl::Seconds(timeout ? std::atoi(timeout) : 3);
  auto comm = CreateCommunicator(*info, options);
  if (!comm.ok()) {
    std::fprintf(stderr, "%s\n", comm.status().ToString().c_str());
    return 1;
  }
  if (const char* gate = std::getenv("COLLECTIVE_GATE")) {
    const std::string ready = std::string(gate) + ".ready-" + std::to_string(info->rank);
    if (FILE* f = std::fopen(ready.c_str(), "w")) std::fclose(f);
    while (access(gate, F_OK) != 0) usleep(50 * 1000);
  }
  std::vector<float> data(4096);
  for (int i = 0; i < iters; ++i) {
    if (i == 1 && info->rank == straggler) {
      std::printf("rank %d: stuck before allreduce %d\n", info->rank, i);
      std::fflush(stdout);
      for (;;) pause();
    }
    for (float& x : data) x = static_cast<float>(info->rank + 1);
    absl::Status s = (*comm)->AllReduce(data.data(), data.data(), data.size(), DataType::kF32,
                                        ReduceOp::kSum);
    if (!s.ok()) {
      std::fprintf(stderr, "%s\n", s.ToString().c_str());
      return 1;
    }
    const float want = info->size * (info->size + 1) / 2.0f;
    if (data[0] != want || data.back() != want) {
      std::fprintf(stderr, "allreduce %d: got %f, want %f\n", i, data[0], want);
      return 1;
    }
  }
  std::printf("rank %d: %d allreduces ok\n", info->rank, iters);
  return 0;
}

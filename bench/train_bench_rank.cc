// The rank half of `sublet-bench train`'s link measurements. Two copies run,
// one per emulated node, bootstrapped from SUBLET_* like sublet-train
// (collectives/bootstrap.h). Modes:
//   allreduce  the data-parallel gradient bytes all-reduced alone (T_comm).
//   tp-layer   a column-parallel layer's forward: Y = all-gather(X) * W, as
//              collective matmul (`chunks` chunks, chunk i multiplies while chunk
//              i+1 moves) and as all-gather then one GEMM (1 chunk); plus
//              the all-gather alone and the GEMM alone, to show comm ~ GEMM.
// Every measurement is repeated `repeats` times, interleaved, and rank 0
// prints the medians (seconds) as one JSON line.
#include <cblas.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <functional>
#include <iostream>
#include <map>
#include <vector>

#include <nlohmann/json.hpp>

#include "bench/train_bench.h"
#include "collectives/bootstrap.h"
#include "collectives/overlap/collective_matmul.h"

namespace sublet::bench {
namespace {

namespace coll = sublet::collectives;
using Clock = std::chrono::steady_clock;

void Check(const absl::Status& s) {
  if (!s.ok()) throw std::runtime_error(std::string(s.message()));
}


// Seconds of fn on this rank, started together with the peer (a one-float
// all-reduce as the barrier) and the slower rank's time kept.
template <typename Fn>
double Timed(coll::Communicator& comm, Fn fn) {
  float token = 0;
  Check(comm.AllReduce(&token, &token, 1, coll::DataType::kF32, coll::ReduceOp::kSum));
  const auto t0 = Clock::now();
  fn();
  float s = std::chrono::duration<float>(Clock::now() - t0).count();
  Check(comm.AllReduce(&s, &s, 1, coll::DataType::kF32, coll::ReduceOp::kMax));
  return s;
}

}  // namespace

int RunTrainRankHelper(const std::string& mode, int64_t bytes, int64_t m_local, int64_t k,
                       int64_t n, int chunks, int repeats, int threads) {
  try {
    openblas_set_num_threads(threads);
    auto info = coll::RankInfoFromEnv([](const char* v) { return std::getenv(v); });
    Check(info.status());
    coll::CommunicatorOptions options;
    options.backend = coll::BackendKind::kHost;
    auto comm_or = coll::CreateCommunicator(*info, options);
    Check(comm_or.status());
    coll::Communicator& comm = **comm_or;
    std::map<std::string, std::vector<double>> times;
    if (mode == "allreduce") {
      std::vector<float> grads(static_cast<size_t>(bytes / 4), 1.0f);
      auto run = [&] {
        Check(comm.AllReduce(grads.data(), grads.data(), grads.size(), coll::DataType::kF32,
                             coll::ReduceOp::kSum));
      };
      Timed(comm, run);  // warm-up
      for (int r = 0; r < repeats; ++r) times["allreduce_s"].push_back(Timed(comm, run));
    } else {
      const int p = comm.size();
      std::vector<float> x(m_local * k, 0.5f), w(k * n, 0.25f), y(p * m_local * n);
      std::vector<float> gathered(p * m_local * k);
      auto with_chunks = [&](int chunks) {
        return [&, chunks] {
          coll::overlap::CollectiveMatmulOptions o;
          o.chunks = chunks;
          Check(coll::overlap::AllGatherMatmul(comm, x.data(), m_local, k, w.data(), n, y.data(), o));
        };
      };
      auto gather = [&] {
        Check(comm.AllGather(x.data(), gathered.data(), x.size(), coll::DataType::kF32));
      };
      auto gemm = [&] {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, p * m_local, n, k, 1.0f,
                    gathered.data(), k, w.data(), n, 0.0f, y.data(), n);
      };
      const std::vector<std::pair<std::string, std::function<void()>>> runs = {
          {"collective_matmul_s", with_chunks(chunks)}, {"gather_then_gemm_s", with_chunks(1)},
          {"allgather_s", gather}, {"gemm_s", gemm}};
      for (const auto& [name, fn] : runs) Timed(comm, fn);  // warm-up
      for (int r = 0; r < repeats; ++r) {
        for (const auto& [name, fn] : runs) times[name].push_back(Timed(comm, fn));
      }
    }
    if (comm.rank() == 0) {
      nlohmann::json out;
      for (const auto& [name, v] : times) out[name] = Median(v);
      std::cout << out.dump() << std::endl;
    }
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "sublet-bench train rank helper: " << e.what() << "\n";
    return 1;
  }
}

}  // namespace sublet::bench

// The rank half of `sublet-bench collectives`: runs inside mpirun, measures
// ours, Open MPI and Gloo on the same buffers, rank 0 writes the rows.
#include <gloo/allgather.h>
#include <gloo/allreduce.h>
#include <gloo/math.h>
#include <gloo/rendezvous/context.h>
#include <gloo/rendezvous/file_store.h>
#include <gloo/rendezvous/prefix_store.h>
#include <gloo/transport/tcp/device.h>
#include <mpi.h>
#include <sodium.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "bench/collectives_bench.h"
#include "collectives/bootstrap.h"
#include "collectives/mpi/mpi_backend.h"

namespace sublet::bench {
namespace {

namespace coll = sublet::collectives;
using Fn = std::function<void()>;

int g_rank = 0;  // for messages only

[[noreturn]] void Die(const std::string& what) {
  std::cerr << "sublet-bench collectives rank " << g_rank << ": " << what << "\n";
  MPI_Abort(MPI_COMM_WORLD, 1);
  std::exit(1);
}

void Check(const absl::Status& s) {
  if (!s.ok()) Die(std::string(s.message()));
}

// Seconds per call of each of `fns` (the slowest rank's), measured
// interleaved: 5 rounds, each timing every implementation in turn for about
// budget/5, and the median round reported. On a shared machine a burst of
// load then hits all implementations alike instead of one of them.
std::vector<double> TimeInterleaved(double budget, const std::vector<Fn>& fns) {
  constexpr int kRounds = 5;
  std::vector<int> iters;
  for (const Fn& fn : fns) {  // one timed warm-up call sets the iteration count
    MPI_Barrier(MPI_COMM_WORLD);
    auto w0 = std::chrono::steady_clock::now();
    fn();
    double warm = std::chrono::duration<double>(std::chrono::steady_clock::now() - w0).count();
    double slowest = 0;
    MPI_Allreduce(&warm, &slowest, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
    iters.push_back(static_cast<int>(
        std::clamp(budget / kRounds / std::max(slowest, 1e-7), 1.0, 400.0)));
  }
  std::vector<std::vector<double>> samples(fns.size());
  for (int round = 0; round < kRounds; ++round) {
    for (size_t f = 0; f < fns.size(); ++f) {
      MPI_Barrier(MPI_COMM_WORLD);
      auto t0 = std::chrono::steady_clock::now();
      for (int i = 0; i < iters[f]; ++i) fns[f]();
      double t =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / iters[f];
      double slowest = 0;
      MPI_Allreduce(&t, &slowest, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
      samples[f].push_back(slowest);
    }
  }
  std::vector<double> medians;
  for (auto& v : samples) medians.push_back(Median(std::move(v)));
  return medians;
}

// GB/s of memcpy: one rank alone, and all ranks at once (summed); each the
// best of 3 trials, so that a burst of load on a shared machine lowers the
// bound less (a higher bound is the stricter one).
std::pair<double, double> MemcpyRates(char* dst, const char* src, size_t bytes) {
  auto copy = [&] {
    auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < 4; ++i) std::memcpy(dst, src, bytes);
    return 4.0 * bytes / std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  };
  copy();
  double alone = 0, all = 0;
  for (int trial = 0; trial < 3; ++trial) {
    MPI_Barrier(MPI_COMM_WORLD);
    if (g_rank == 0) alone = std::max(alone, copy());
    MPI_Barrier(MPI_COMM_WORLD);
    double mine = copy(), sum = 0;
    MPI_Allreduce(&mine, &sum, 1, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
    all = std::max(all, sum);
  }
  MPI_Bcast(&alone, 1, MPI_DOUBLE, 0, MPI_COMM_WORLD);
  return {alone / 1e9, all / 1e9};
}

// Gloo's ring allreduce (sum) of n floats, the peer of ours on every path.
void GlooAllreduce(const std::shared_ptr<gloo::Context>& ctx, float* in, float* out, size_t n,
                   uint32_t tag) {
  gloo::AllreduceOptions g(ctx);
  g.setInput(in, n);
  g.setOutput(out, n);
  g.setReduceFunction(
      static_cast<void (*)(void*, const void*, const void*, size_t)>(&gloo::sum<float>));
  g.setTag(tag);
  gloo::allreduce(g);
}

std::shared_ptr<gloo::Context> GlooContext(int rank, int size) {
  char dir[256] = {};
  if (rank == 0) {
    char tmpl[] = "/tmp/sublet-bench-gloo-XXXXXX";
    if (!mkdtemp(tmpl)) Die("mkdtemp");
    std::strncpy(dir, tmpl, sizeof(dir) - 1);
  }
  MPI_Bcast(dir, sizeof(dir), MPI_CHAR, 0, MPI_COMM_WORLD);
  gloo::transport::tcp::attr attr;
  attr.hostname = "127.0.0.1";
  auto device = gloo::transport::tcp::CreateDevice(attr);
  gloo::rendezvous::FileStore files(dir);
  gloo::rendezvous::PrefixStore store("bench", files);
  auto context = std::make_shared<gloo::rendezvous::Context>(rank, size);
  context->connectFullMesh(store, device);
  MPI_Barrier(MPI_COMM_WORLD);
  if (rank == 0) std::filesystem::remove_all(dir);
  return context;
}

// `secret`: what a Sublet job's ranks prove to each other (SUBLET_JOB_SECRET,
// 32 bytes); empty for none.
std::unique_ptr<coll::Communicator> Ours(const std::string& node, size_t slot_bytes, int spin_us,
                                         const std::string& secret = "") {
  auto info = coll::RankInfoFromEnv(getenv);
  Check(info.status());
  if (!node.empty()) info->node = node;
  info->secret = secret;
  coll::CommunicatorOptions options;
  options.backend = coll::BackendKind::kHost;
  options.timeout = absl::Minutes(2);
  options.shm_slot_bytes = slot_bytes;
  options.shm_spin = absl::Microseconds(spin_us);
  auto comm = coll::CreateCommunicator(*info, options);
  Check(comm.status());
  return std::move(*comm);
}

struct Buffers {
  std::vector<float> in, out;
};

// The 1-minute load average: this machine may be shared, and every figure
// here is wall-clock.
double LoadAverage() {
  double load = -1;
  std::ifstream("/proc/loadavg") >> load;
  return load;
}

double GBps(size_t bytes, double seconds) { return seconds > 0 ? bytes / seconds / 1e9 : 0; }

nlohmann::json Row(const std::string& op, size_t bytes, int p, double ours, double mpi,
                   double gloo, double bound) {
  const double factor = op.rfind("allreduce", 0) == 0 ? 2.0 * (p - 1) / p : double(p - 1) / p;
  nlohmann::json r = {{"op", op}, {"bytes", bytes}, {"ours_gbps", ours},
                      {"ours_busbw_gbps", ours * factor}};
  r["mpi_gbps"] = mpi > 0 ? nlohmann::json(mpi) : nlohmann::json(nullptr);
  r["gloo_gbps"] = gloo > 0 ? nlohmann::json(gloo) : nlohmann::json(nullptr);
  r["vs_mpi"] = mpi > 0 ? nlohmann::json(ours / mpi) : nlohmann::json(nullptr);
  r["vs_gloo"] = gloo > 0 ? nlohmann::json(ours / gloo) : nlohmann::json(nullptr);
  r["bound_gbps"] = bound > 0 ? nlohmann::json(bound) : nlohmann::json(nullptr);
  r["of_bound"] = bound > 0 ? nlohmann::json(ours / bound) : nlohmann::json(nullptr);
  return r;
}

// One core's AEAD encryption rate over 4 MiB messages (GB/s): what encrypting
// the gradient bytes would cost each sender (and, to decrypt, each receiver).
double AeadGBps(bool aes) {
  if (sodium_init() < 0 || (aes && !crypto_aead_aes256gcm_is_available())) return 0;
  const size_t n = 4 << 20;
  std::vector<unsigned char> m(n, 7), c(n + 16);
  unsigned char key[32] = {1}, nonce[12] = {0};
  unsigned long long len = 0;
  double best = 0;
  for (int trial = 0; trial < 3; ++trial) {
    const auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < 16; ++i) {
      if (aes) {
        crypto_aead_aes256gcm_encrypt(c.data(), &len, m.data(), n, nullptr, 0, nullptr, nonce, key);
      } else {
        crypto_aead_chacha20poly1305_ietf_encrypt(c.data(), &len, m.data(), n, nullptr, 0,
                                                  nullptr, nonce, key);
      }
    }
    best = std::max(best, GBps(16 * n, std::chrono::duration<double>(
                                           std::chrono::steady_clock::now() - t0).count()));
  }
  return best;
}

}  // namespace

int RunCollectivesBenchRank(const CollectivesBenchOptions& o) {
  Check(coll::mpi::EnsureMpi());
  const double load_before = LoadAverage();
  int rank = 0, p = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &p);
  g_rank = rank;
  const size_t max_elems = o.max_bytes / sizeof(float) + 1;
  Buffers b{std::vector<float>(max_elems, 1.0f + rank), std::vector<float>(max_elems, 0.0f)};
  auto [memcpy_one, memcpy_all] =
      MemcpyRates(reinterpret_cast<char*>(b.out.data()), reinterpret_cast<const char*>(b.in.data()),
                  max_elems * sizeof(float));
  const double bound = memcpy_all / (3.0 * p - 1.0);

  auto shm = Ours("", o.shm_slot_bytes, o.shm_spin_us);
  auto gloo_ctx = GlooContext(rank, p);
  uint32_t tag = 0;
  float* in = b.in.data();
  float* out = b.out.data();
  std::vector<nlohmann::json> rows;

  for (size_t bytes = o.min_bytes; bytes <= o.max_bytes; bytes *= 2) {
    const size_t n = std::max<size_t>(1, bytes / sizeof(float));
    const size_t chunk = std::max<size_t>(1, n / p);
    const double budget = o.seconds_per_point;
    auto gloo_allreduce = [&] { GlooAllreduce(gloo_ctx, in, out, n, tag++); };
    auto wanted = [&](const char* op) {
      return std::find(o.ops.begin(), o.ops.end(), op) != o.ops.end();
    };
    if (wanted("allreduce")) {
      auto ar = TimeInterleaved(budget, {
        [&] { Check(shm->AllReduce(in, out, n, coll::DataType::kF32, coll::ReduceOp::kSum)); },
        [&] { MPI_Allreduce(in, out, static_cast<int>(n), MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD); },
        gloo_allreduce});
      rows.push_back(Row("allreduce", n * 4, p, GBps(n * 4, ar[0]), GBps(n * 4, ar[1]),
                         GBps(n * 4, ar[2]), bound));
    }

    // reduce_scatter: S = the whole input (p chunks); allgather: S = the whole output.
    const size_t total = chunk * p * 4;
    if (wanted("reduce_scatter")) {
      auto rs = TimeInterleaved(budget, {
        [&] {
          Check(shm->ReduceScatter(in, out, chunk, coll::DataType::kF32, coll::ReduceOp::kSum));
        },
        [&] {
          MPI_Reduce_scatter_block(in, out, static_cast<int>(chunk), MPI_FLOAT, MPI_SUM,
                                   MPI_COMM_WORLD);
        }});
      rows.push_back(
          Row("reduce_scatter", total, p, GBps(total, rs[0]), GBps(total, rs[1]), 0, 0));
    }
    if (wanted("allgather")) {
      auto ag = TimeInterleaved(budget, {
        [&] { Check(shm->AllGather(in, out, chunk, coll::DataType::kF32)); },
        [&] {
          MPI_Allgather(in, static_cast<int>(chunk), MPI_FLOAT, out, static_cast<int>(chunk),
                        MPI_FLOAT, MPI_COMM_WORLD);
        },
        [&] {
          gloo::AllgatherOptions g(gloo_ctx);
          g.setInput(in, chunk);
          g.setOutput(out, chunk * p);
          g.setTag(tag++);
          gloo::allgather(g);
        }});
      rows.push_back(Row("allgather", total, p, GBps(total, ag[0]), GBps(total, ag[1]),
                         GBps(total, ag[2]), 0));
    }
  }
  shm.reset();

  if (o.internode) {
    // Ours twice: as under mpirun (no secret), and as in a Sublet job, where
    // every store and mesh connection first proves the job secret. Setup is
    // timed on each rank (the slowest reported); the transfers are interleaved.
    const std::string node = "emulated-node-" + std::to_string(rank);
    const std::string secret(32, '\x5c');
    auto timed_setup = [&](const std::string& key) {
      MPI_Barrier(MPI_COMM_WORLD);
      const auto t0 = std::chrono::steady_clock::now();
      auto comm = Ours(node, o.shm_slot_bytes, o.shm_spin_us, key);
      double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0)
                      .count();
      MPI_Allreduce(MPI_IN_PLACE, &ms, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
      return std::make_pair(std::move(comm), ms);
    };
    // Setup: the fastest of 3 alternated tries of each (the first pays one-off costs).
    auto [tcp, setup_ms] = timed_setup("");
    auto [tcp_secret, setup_secret_ms] = timed_setup(secret);
    for (int round = 1; round < 3; ++round) {
      setup_ms = std::min(setup_ms, timed_setup("").second);
      setup_secret_ms = std::min(setup_secret_ms, timed_setup(secret).second);
    }
    for (size_t bytes = o.min_bytes; bytes <= o.max_bytes; bytes *= 2) {
      const size_t n = std::max<size_t>(1, bytes / sizeof(float));
      const double budget = o.seconds_per_point;
      auto t = TimeInterleaved(budget, {
        [&] { Check(tcp->AllReduce(in, out, n, coll::DataType::kF32, coll::ReduceOp::kSum)); },
        [&] { GlooAllreduce(gloo_ctx, in, out, n, tag++); },
        [&] {
          Check(tcp_secret->AllReduce(in, out, n, coll::DataType::kF32, coll::ReduceOp::kSum));
        }});
      const double ours = t[0], gloo = t[1], with_secret = t[2];
      nlohmann::json row =
          Row("allreduce_internode", n * 4, p, GBps(n * 4, ours), 0, GBps(n * 4, gloo), 0);
      row["ours_job_secret_gbps"] = GBps(n * 4, with_secret);
      row["job_secret_vs_none"] = ours > 0 && with_secret > 0 ? ours / with_secret : 0;
      row["setup_ms"] = setup_ms;
      row["setup_job_secret_ms"] = setup_secret_ms;
      rows.push_back(row);
    }
  }

  if (rank == 0) {
    nlohmann::json doc;
    doc["machine"] = {{"ranks", p},
                      {"cores", std::thread::hardware_concurrency()},
                      {"memcpy_gbps_one_rank", memcpy_one},
                      {"memcpy_gbps_all_ranks", memcpy_all},
                      {"aead_chacha20poly1305_gbps_one_core", AeadGBps(false)},
                      {"aead_aes256gcm_gbps_one_core", AeadGBps(true)},
                      {"loadavg_1min_start", load_before},
                      {"loadavg_1min_end", LoadAverage()},
                      {"bound_rule", "allreduce bound = memcpy_gbps_all_ranks / (3p-1)"}};
    doc["rows"] = rows;
    std::ofstream(o.worker_output) << doc.dump();
  }
  MPI_Barrier(MPI_COMM_WORLD);
  return 0;
}

}  // namespace sublet::bench

#include "bench/ckpt_bench.h"

#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <thread>
#include <vector>

#include "checkpoint/checkpoint.h"
#include "fmt/format.h"

namespace sublet::bench {
namespace {

namespace ckpt = sublet::checkpoint;
using Clock = std::chrono::steady_clock;
constexpr uint64_t kChunk = 64 << 20;

double Since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

void Check(const absl::Status& status, const std::string& what) {
  if (!status.ok()) throw std::runtime_error(what + ": " + std::string(status.message()));
}

// One rank's state: `tensors` f32 tensors split on dim 0, filled with noise.
struct RankBuffers {
  std::vector<std::vector<std::byte>> data;
  std::vector<ckpt::TensorShard> shards;
};

std::vector<ckpt::TensorSpec> Specs(const CkptBenchOptions& o) {
  const int64_t rows = static_cast<int64_t>((o.size_mib << 20) / o.tensors / 4 / 1024);
  std::vector<ckpt::TensorSpec> specs;
  for (int i = 0; i < o.tensors; ++i) {
    specs.push_back({fmt::format("layer{}.w", i), ckpt::DType::kF32, {rows, 1024}, 0});
  }
  return specs;
}

RankBuffers MakeBuffers(const std::vector<ckpt::TensorSpec>& specs, int tp, int tp_rank, bool fill) {
  RankBuffers b;
  uint64_t x = 0x9e3779b97f4a7c15ull + static_cast<uint64_t>(tp_rank);
  for (const ckpt::TensorSpec& spec : specs) {
    std::vector<std::byte> bytes(ckpt::LocalBytes(spec, tp, tp_rank));
    if (fill) {
      for (size_t i = 0; i + 8 <= bytes.size(); i += 8) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        std::memcpy(bytes.data() + i, &x, 8);
      }
    }
    b.data.push_back(std::move(bytes));
  }
  for (size_t i = 0; i < specs.size(); ++i) b.shards.push_back({specs[i], b.data[i].data(), b.data[i].size()});
  return b;
}

bool DropCaches() {
  sync();
  std::ofstream f("/proc/sys/vm/drop_caches");
  f << "3\n";
  f.flush();
  return f.good();
}

// The peer for writes: the same bytes in one file, 64 MiB writes, fdatasync.
double WriteFile(const std::string& path, const std::vector<RankBuffers>& ranks) {
  const auto t0 = Clock::now();
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) throw std::runtime_error("cannot create " + path);
  for (const RankBuffers& r : ranks) {
    for (const auto& d : r.data) {
      for (uint64_t off = 0; off < d.size(); off += kChunk) {
        const size_t n = std::min<uint64_t>(kChunk, d.size() - off);
        if (write(fd, d.data() + off, n) != static_cast<ssize_t>(n)) throw std::runtime_error("write failed");
      }
    }
  }
  if (fdatasync(fd) != 0) throw std::runtime_error("fdatasync failed");
  close(fd);
  return Since(t0);
}

// The peer for reads: the file back in 64 MiB reads.
double ReadFile(const std::string& path) {
  std::vector<std::byte> buffer(kChunk);
  const auto t0 = Clock::now();
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw std::runtime_error("cannot open " + path);
  while (read(fd, buffer.data(), buffer.size()) > 0) {
  }
  close(fd);
  return Since(t0);
}

double MemcpyRate() {
  std::vector<std::byte> a(256 << 20, std::byte{1}), b(256 << 20);
  std::memcpy(b.data(), a.data(), a.size());
  const auto t0 = Clock::now();
  std::memcpy(b.data(), a.data(), a.size());
  return a.size() / Since(t0) / 1e9;
}

// Runs fn(rank) on one thread per rank.
template <typename Fn>
void OnRanks(int n, Fn fn) {
  std::vector<std::thread> threads;
  for (int r = 0; r < n; ++r) threads.emplace_back([&, r] { fn(r); });
  for (std::thread& t : threads) t.join();
}

class Bench {
 public:
  Bench(const CkptBenchOptions& o, std::string dir)
      : o_(o), dir_(std::move(dir)), world_(o.dp * o.tp), groups_(world_), specs_(Specs(o)) {
    for (int r = 0; r < world_; ++r) ranks_.push_back(MakeBuffers(specs_, o.tp, r % o.tp, true));
    for (int r = 0; r < world_; ++r) {
      ckpt::SaveOptions so;
      so.dir = dir_ + "/ckpt";
      so.topology = {o.dp, o.tp, r / o.tp, r % o.tp};
      // The timed sync saves start from an empty directory (RemoveSteps), so
      // retention only runs in the async saves' writer, outside the timings.
      so.keep = 1;
      savers_.push_back(std::make_unique<ckpt::Checkpointer>(fs_, groups_.Member(r), so));
    }
    for (const auto& spec : specs_) bytes_ += ckpt::LocalBytes(spec, 1, 0);
  }

  uint64_t bytes() const { return bytes_; }

  double SyncSave(int64_t step) {
    RemoveSteps();
    std::vector<double> persist(world_);
    OnRanks(world_, [&](int r) {
      auto stats = savers_[r]->Save({step, 0, ""}, ranks_[r].shards);
      Check(stats.status(), "sync save");
      persist[r] = stats->persist_s;
    });
    return *std::max_element(persist.begin(), persist.end());
  }

  // Returns the slowest rank's pause in SaveAsync (the snapshot): the median
  // over --repeats saves after a first one (which allocates the staging
  // buffers), and that first one's.
  std::pair<double, double> AsyncStall(int64_t step) {
    RemoveSteps();
    std::vector<double> first(world_), steady(world_);
    OnRanks(world_, [&](int r) {
      std::vector<double> pauses;
      for (int i = 0; i <= o_.repeats; ++i) {
        const auto t0 = Clock::now();
        Check(savers_[r]->SaveAsync({step + i, 0, ""}, ranks_[r].shards), "async save");
        (i == 0 ? first[r] : pauses.emplace_back()) = Since(t0);
        Check(savers_[r]->Wait().status(), "async save");
      }
      steady[r] = Median(pauses);
    });
    return {*std::max_element(steady.begin(), steady.end()), *std::max_element(first.begin(), first.end())};
  }

  double Load() {
    std::vector<RankBuffers>& targets = load_targets_;
    if (targets.empty()) {
      for (int r = 0; r < world_; ++r) {
        targets.push_back(MakeBuffers(specs_, o_.tp, r % o_.tp, false));
      }
    }
    for (auto& t : targets) {
      for (auto& d : t.data) std::fill(d.begin(), d.end(), std::byte{0});  // fault pages in
    }
    if (o_.drop_caches) DropCaches();
    const auto t0 = Clock::now();
    OnRanks(world_, [&](int r) {
      ckpt::LoadOptions lo;
      lo.dir = dir_ + "/ckpt";
      lo.topology = {o_.dp, o_.tp, r / o_.tp, r % o_.tp};
      Check(ckpt::LoadCheckpoint(fs_, groups_.Member(r), lo, targets[r].shards).status(), "load");
    });
    const double s = Since(t0);
    for (int r = 0; r < world_; ++r) {
      if (targets[r].data != ranks_[r].data) throw std::runtime_error("loaded bytes differ");
    }
    return s;
  }

  double WriteBaseline() {
    std::filesystem::remove(dir_ + "/baseline.bin");
    return WriteFile(dir_ + "/baseline.bin", {ranks_.begin(), ranks_.begin() + o_.tp});
  }

  double ReadBaseline() {
    if (o_.drop_caches) DropCaches();
    return ReadFile(dir_ + "/baseline.bin");
  }

 private:
  void RemoveSteps() {
    std::error_code ignored;
    std::filesystem::remove_all(dir_ + "/ckpt", ignored);
  }

  const CkptBenchOptions o_;
  const std::string dir_;
  const int world_;
  ckpt::PosixFileSystem fs_;
  ckpt::InProcessGroups groups_;
  std::vector<ckpt::TensorSpec> specs_;
  std::vector<RankBuffers> ranks_;
  std::vector<std::unique_ptr<ckpt::Checkpointer>> savers_;
  std::vector<RankBuffers> load_targets_;  // allocated by the first Load
  uint64_t bytes_ = 0;
};

}  // namespace

Report RunCkptBench(const CkptBenchOptions& o, const std::string& command) {
  if (o.tensors < 1 || o.dp < 1 || o.tp < 1 || o.repeats < 1 || o.size_mib < 1) {
    throw std::runtime_error("ckpt: --tensors, --dp, --tp, --repeats and --size-mib must be >= 1");
  }
  std::string tmpl = o.dir + "/sublet-bench-ckpt-XXXXXX";
  if (mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp failed under " + o.dir);
  const std::string dir = tmpl;
  CkptBenchOptions opts = o;
  if (opts.drop_caches && !DropCaches()) opts.drop_caches = false;

  Report report;
  report.area = "ckpt";
  report.command = command;
  report.machine["cores"] = std::thread::hardware_concurrency();
  report.machine["memcpy_gbps"] = MemcpyRate();
  report.machine["page_cache"] = opts.drop_caches ? "dropped before every timed read" : "warm (could not drop)";
  {
    Bench bench(opts, dir);
    const double gb = bench.bytes() / 1e9;
    // The disk's speed swings by 3x within seconds on a shared VM, so each
    // ratio is the median of ratios of adjacent pairs (the peer and ours back to back,
    // --repeats times), not a ratio of medians taken minutes apart.
    std::vector<double> write_s, save_s, save_ratio;
    for (int i = 0; i < opts.repeats; ++i) {
      write_s.push_back(bench.WriteBaseline());
      save_s.push_back(bench.SyncSave(100 + i));
      save_ratio.push_back(write_s.back() / save_s.back());
    }
    const double write = Median(write_s), save = Median(save_s);
    report.machine["write_gbps"] = gb / write;
    auto [stall, first_stall] = bench.AsyncStall(200);
    std::vector<double> read_s, load_s, load_ratio;
    for (int i = 0; i < opts.repeats; ++i) {
      load_s.push_back(bench.Load());
      read_s.push_back(bench.ReadBaseline());
      load_ratio.push_back(read_s.back() / load_s.back());
    }
    const double load = Median(load_s), read = Median(read_s);
    report.machine["read_gbps"] = gb / read;
    const std::string topo = fmt::format("dp{}xtp{}", opts.dp, opts.tp);
    report.rows.push_back({{"op", "sync_save"}, {"topology", topo}, {"bytes", bench.bytes()},
                           {"ours_s", save}, {"ours_gbps", gb / save},
                           {"peer", "sequential write + fdatasync"}, {"peer_gbps", gb / write},
                           {"ratio", Median(save_ratio)}, {"target", ">= 0.8"}});
    report.rows.push_back({{"op", "async_stall"}, {"topology", topo}, {"bytes", bench.bytes()},
                           {"ours_s", stall}, {"first_s", first_stall},
                           {"peer", "our sync save"}, {"peer_s", save},
                           {"ratio", stall / save}, {"target", "<= 0.1"}});
    report.rows.push_back({{"op", "load"}, {"topology", topo}, {"bytes", bench.bytes()},
                           {"ours_s", load}, {"ours_gbps", gb / load},
                           {"peer", "sequential read"}, {"peer_gbps", gb / read},
                           {"ratio", Median(load_ratio)}, {"target", ">= 0.8"}});
  }
  std::filesystem::remove_all(dir);
  return report;
}

std::pair<CLI::App*, std::function<Report(const std::string&)>> AddCkptCommand(CLI::App& app) {
  auto o = std::make_shared<CkptBenchOptions>();
  CLI::App* c = app.add_subcommand(
      "ckpt",
      "Makes a model state of --size-mib MiB (--tensors f32 tensors, split on dim 0 across tp) "
      "held by --dp x --tp ranks (threads), in a scratch directory under --dir. Alternates "
      "--repeats times: the peer (the same bytes written to one file in 64 MiB writes, then "
      "fdatasync) and our synchronous save (shards, checksums, fsyncs, MANIFEST, COMMIT, "
      "rename); medians. Then the async stall: how long SaveAsync blocks (the snapshot), "
      "median of --repeats saves after a first that allocates the staging buffers, against "
      "the sync save time. Then --repeats times our load of the last checkpoint (verifying "
      "every checksum) and a sequential read of the peer's file, with the page cache "
      "dropped before each when possible (root), else both warm. Save and load ratios are "
      "medians of the ratios of adjacent pairs; times are medians.");
  c->add_option("--size-mib", o->size_mib)->capture_default_str();
  c->add_option("--tensors", o->tensors)->capture_default_str();
  c->add_option("--dp", o->dp)->capture_default_str();
  c->add_option("--tp", o->tp)->capture_default_str();
  c->add_option("--repeats", o->repeats)->capture_default_str();
  c->add_option("--dir", o->dir, "parent directory for the scratch files")->capture_default_str();
  c->add_flag("!--no-drop-caches", o->drop_caches, "keep the page cache warm for both reads");
  return {c, [o](const std::string& command) { return RunCkptBench(*o, command); }};
}

}  // namespace sublet::bench

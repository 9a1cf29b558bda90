#include "bench/ckpt_bench.h"

#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <thread>
#include <vector>

#include "checkpoint/checkpoint.h"
#include "worker/train/adamw.h"
#include "worker/train/tensor.h"
#include "fmt/format.h"

namespace sublet::bench {
namespace {

namespace ckpt = sublet::checkpoint;
using Clock = std::chrono::steady_clock;
constexpr uint64_t kChunk = 64 << 20;

double Since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }


double Min(const std::vector<double>& v) { return *std::min_element(v.begin(), v.end()); }

void Check(const absl::Status& status, const std::string& what) {
  if (!status.ok()) throw std::runtime_error(what + ": " + std::string(status.message()));
}

// One rank's state: for each parameter its value and AdamW's two moments
// (--tensors / 3 parameters, f32, split on dim 0 across tp), the shape of
// what sublet-train saves, so the bench can run the trainer's own optimizer
// step over it.
struct RankBuffers {
  std::vector<train::Tensor> data;  // value, adam.m, adam.v, value, ...
  std::vector<ckpt::TensorShard> shards;
};

uint64_t Bytes(const train::Tensor& t) { return t.data.size() * sizeof(float); }

std::vector<ckpt::TensorSpec> Specs(const CkptBenchOptions& o) {
  // Rounded up: the state is at least --size-mib.
  const uint64_t row_bytes = 1024 * 4;
  const int64_t rows = static_cast<int64_t>(
      ((o.size_mib << 20) + o.tensors * row_bytes - 1) / (o.tensors * row_bytes));
  std::vector<ckpt::TensorSpec> specs;
  for (int i = 0; i < o.tensors / 3; ++i) {
    for (const char* prefix : {"", "adam.m.", "adam.v."}) {
      specs.push_back({fmt::format("{}layer{}.w", prefix, i), ckpt::DType::kF32, {rows, 1024}, 0});
    }
  }
  return specs;
}

// Values in [-0.01, 0.01) (second moments: their magnitudes), or zeros;
// never NaN or denormal, which would distort the optimizer's timing.
RankBuffers MakeBuffers(const std::vector<ckpt::TensorSpec>& specs, int tp, int tp_rank, bool fill) {
  RankBuffers b;
  uint64_t x = 0x9e3779b97f4a7c15ull + static_cast<uint64_t>(tp_rank);
  for (const ckpt::TensorSpec& spec : specs) {
    train::Tensor t = train::Tensor::Zeros(ckpt::LocalShape(spec, tp, tp_rank));
    if (fill) {
      const bool positive = spec.name.rfind("adam.v.", 0) == 0;
      for (float& f : t.data) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        f = (static_cast<float>(x >> 40) / static_cast<float>(1 << 24) - 0.5f) * 0.02f;
        if (positive) f = std::fabs(f) + 1e-6f;
      }
    }
    b.data.push_back(std::move(t));
  }
  for (size_t i = 0; i < specs.size(); ++i) {
    b.shards.push_back({specs[i], reinterpret_cast<std::byte*>(b.data[i].data.data()),
                        Bytes(b.data[i])});
  }
  return b;
}

bool SameBytes(const RankBuffers& a, const RankBuffers& b) {
  for (size_t i = 0; i < a.data.size(); ++i) {
    if (std::memcmp(a.data[i].data.data(), b.data[i].data.data(), Bytes(a.data[i])) != 0) {
      return false;
    }
  }
  return true;
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
    for (const train::Tensor& t : r.data) {
      const auto* d = reinterpret_cast<const char*>(t.data.data());
      for (uint64_t off = 0; off < Bytes(t); off += kChunk) {
        const size_t n = std::min<uint64_t>(kChunk, Bytes(t) - off);
        if (write(fd, d + off, n) != static_cast<ssize_t>(n)) throw std::runtime_error("write failed");
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
    for (int r = 0; r < world_; ++r) {
      ranks_.push_back(MakeBuffers(specs_, o.tp, r % o.tp, true));
      spares_.push_back(MakeBuffers(specs_, o.tp, r % o.tp, false));
      grads_.emplace_back();
      for (size_t j = 0; j + 2 < specs_.size(); j += 3) {
        grads_.back().push_back(ranks_.back().data[j]);  // any finite values do
      }
    }
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
  std::pair<double, double> SnapshotStall(int64_t step) {
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

  struct DoubleBuffered {
    double in_place_s;      // the optimizer step in place (a step without a save)
    double out_of_place_s;  // the same step writing into the other buffers
    double lend_s;          // SaveAsyncLent
    double stall_s;         // what a save adds to a step: out of place + lend - in place
  };

  // The async save as sublet-train makes it (worker/runtime/trainer.cc): the
  // live state is lent to the writer (SaveAsyncLent, no copy) and the next
  // optimizer step, the trainer's AdamW over every value and moment, writes
  // the new state into the other buffers instead of in place. Per --repeats
  // the in-place step and the out-of-place step plus the lend are timed back
  // to back; medians per rank, the slowest rank's. As for SaveAsync's pause,
  // the writer's own work is not timed: the lend follows the timed step here,
  // where in training it precedes it, so in training the out-of-place step
  // shares memory bandwidth with the writer (as the steps after a SaveAsync
  // do) and may cost more than measured here.
  DoubleBuffered DoubleBufferedStall(int64_t step) {
    RemoveSteps();  // retention must not find a newer step from earlier phases
    std::vector<DoubleBuffered> per_rank(world_);
    OnRanks(world_, [&](int r) {
      RankBuffers* live = &ranks_[r];
      RankBuffers* spare = &spares_[r];
      const std::vector<train::Tensor>& grads = grads_[r];
      std::vector<double> in_place, out_of_place, lend, stall;
      for (int i = 0; i < o_.repeats; ++i) {
        std::vector<train::Tensor>& s = live->data;
        auto t0 = Clock::now();
        for (size_t j = 0; j + 2 < s.size(); j += 3) {
          train::AdamWUpdate({}, 2 * i + 1, 1e-3f, true, grads[j / 3], &s[j], &s[j + 1], &s[j + 2]);
        }
        in_place.push_back(Since(t0));
        std::vector<train::Tensor>& o = spare->data;
        t0 = Clock::now();
        for (size_t j = 0; j + 2 < s.size(); j += 3) {
          train::AdamWUpdateInto({}, 2 * i + 2, 1e-3f, true, grads[j / 3], s[j], s[j + 1], s[j + 2],
                                 &o[j], &o[j + 1], &o[j + 2]);
        }
        out_of_place.push_back(Since(t0));
        t0 = Clock::now();
        Check(savers_[r]->SaveAsyncLent({step + i, 0, ""}, live->shards), "lent save");
        lend.push_back(Since(t0));
        stall.push_back(out_of_place.back() + lend.back() - in_place.back());
        Check(savers_[r]->Wait().status(), "lent save");
        std::swap(live, spare);  // the new state is live
      }
      // ranks_ holds what the newest checkpoint holds (Load compares them).
      if (spare != &ranks_[r]) std::swap(ranks_[r], spares_[r]);
      per_rank[r] = {Median(in_place), Median(out_of_place), Median(lend), Median(stall)};
    });
    return *std::max_element(per_rank.begin(), per_rank.end(),
                             [](const auto& a, const auto& b) { return a.stall_s < b.stall_s; });
  }

  double Load() {
    std::vector<RankBuffers>& targets = load_targets_;
    if (targets.empty()) {
      for (int r = 0; r < world_; ++r) {
        targets.push_back(MakeBuffers(specs_, o_.tp, r % o_.tp, false));
      }
    }
    for (auto& t : targets) {
      for (auto& d : t.data) std::fill(d.data.begin(), d.data.end(), 0.0f);  // fault pages in
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
      if (!SameBytes(targets[r], ranks_[r])) throw std::runtime_error("loaded bytes differ");
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
  std::vector<RankBuffers> spares_;         // the second state, for double buffering
  std::vector<std::vector<train::Tensor>> grads_;  // one per parameter (not saved)
  uint64_t bytes_ = 0;
};

}  // namespace

Report RunCkptBench(const CkptBenchOptions& o, const std::string& command) {
  if (o.tensors < 3 || o.tensors % 3 != 0 || o.dp < 1 || o.tp < 1 || o.repeats < 1 ||
      o.size_mib < 1) {
    throw std::runtime_error(
        "ckpt: --tensors must be a positive multiple of 3 (value, adam.m, adam.v per "
        "parameter); --dp, --tp, --repeats and --size-mib must be >= 1");
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
    auto [snapshot, first_snapshot] = bench.SnapshotStall(200);
    const auto doubled = bench.DoubleBufferedStall(300);
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
                           {"ratio", Median(save_ratio)},
                           {"best_ratio", Min(write_s) / Min(save_s)}, {"target", ">= 0.8"}});
    report.rows.push_back({{"op", "async_stall"}, {"topology", topo}, {"bytes", bench.bytes()},
                           {"how", "double buffered (sublet-train)"}, {"ours_s", doubled.stall_s},
                           {"optimizer_in_place_s", doubled.in_place_s},
                           {"optimizer_out_of_place_s", doubled.out_of_place_s},
                           {"lend_s", doubled.lend_s}, {"peer", "our sync save"},
                           {"peer_s", save}, {"ratio", doubled.stall_s / save},
                           {"target", "<= 0.1"}});
    report.rows.push_back({{"op", "snapshot_stall"}, {"topology", topo}, {"bytes", bench.bytes()},
                           {"how", "SaveAsync copies into staging"}, {"ours_s", snapshot},
                           {"first_s", first_snapshot}, {"peer", "our sync save"},
                           {"peer_s", save}, {"ratio", snapshot / save}, {"target", "-"}});
    report.rows.push_back({{"op", "load"}, {"topology", topo}, {"bytes", bench.bytes()},
                           {"ours_s", load}, {"ours_gbps", gb / load},
                           {"peer", "sequential read"}, {"peer_gbps", gb / read},
                           {"ratio", Median(load_ratio)},
                           {"best_ratio", Min(read_s) / Min(load_s)}, {"target", ">= 0.8"}});
  }
  std::filesystem::remove_all(dir);
  return report;
}

std::pair<CLI::App*, std::function<Report(const std::string&)>> AddCkptCommand(CLI::App& app) {
  auto o = std::make_shared<CkptBenchOptions>();
  CLI::App* c = app.add_subcommand(
      "ckpt",
      "Makes a model state of at least --size-mib MiB (--tensors f32 tensors: value, AdamW m "
      "and v of --tensors/3 parameters, split on dim 0 across tp) held by --dp x --tp ranks "
      "(threads), in a scratch directory under --dir. Alternates --repeats times: the peer "
      "(the same bytes written to one file in 64 MiB writes, then fdatasync) and our "
      "synchronous save (shards, checksums, fsyncs, MANIFEST, COMMIT, rename). Then the "
      "snapshot stall: how long SaveAsync blocks copying into staging (median of --repeats "
      "after a first that allocates). Then the async stall as sublet-train pays it (double "
      "buffering): per --repeats, the trainer's AdamW step over the state in place, then "
      "out of place into a second state plus SaveAsyncLent; the stall is out of place + "
      "lend - in place (medians); both stalls against the sync save time. Then --repeats "
      "times our load of the last checkpoint (verifying every checksum) and a sequential "
      "read of the peer's file, with the page cache dropped before each when possible "
      "(root), else both warm. Save and load ratios are medians of the ratios of adjacent "
      "pairs (best_ratio: the fastest peer over our fastest); times are medians; with "
      "several ranks, the slowest rank's.");
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

#include "bench/ckpt_bench.h"

#include <fcntl.h>
#include <nlohmann/json.hpp>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <thread>
#include <vector>

#include "bench/process.h"
#include "checkpoint/checkpoint.h"
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
// what sublet-train saves.
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
    // The peer for writes: the bytes one data-parallel replica saves, in one
    // file, with the writeback our files get.
    return FsyncedWriteSeconds(dir_ + "/baseline.bin", bytes_, /*keep=*/true);
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

// The async stall with the writer running, as a tenant pays it: one
// sublet-train rank (one OpenBLAS thread) of --train-model, per round three
// runs back to back: no checkpointing, --checkpoint-every 1 (async, double
// buffered: the writer persists step k while step k+1 trains) and
// --checkpoint-every 1 --sync-checkpoint (the step waits for the save). Each
// run's figure is its median whole iteration (IterationSeconds, 2 warm-up
// steps dropped); medians over rounds. The stalls are the checkpointing runs'
// iterations minus the run without; ours is the async one, its peer the sync.
nlohmann::json TrainerStall(const CkptBenchOptions& o, const std::string& dir) {
  const std::string log = dir + "/train.jsonl";
  auto run = [&](const std::string& mode, int round, int64_t* bytes) {
    std::filesystem::remove(log);
    const std::string ckpt_dir = fmt::format("{}/train-ckpt-{}-{}", dir, mode, round);
    std::vector<std::string> argv = {BinDir() + "/sublet-train", "--model", o.train_model,
                                     "--steps", std::to_string(o.train_steps), "--global-batch",
                                     std::to_string(o.train_batch), "--seq-len",
                                     std::to_string(o.train_seq), "--log-json", log,
                                     "--checkpoint-dir", ckpt_dir, "--keep", "1",
                                     "--checkpoint-every", mode == "none" ? "0" : "1"};
    if (mode == "sync") argv.push_back("--sync-checkpoint");
    WaitAll({Spawn(argv, {{"OPENBLAS_NUM_THREADS", "1"}}, "/dev/null")},
            std::chrono::seconds(900), "sublet-train --checkpoint-every " + mode);
    const std::string lines = ReadAll(log);
    std::istringstream in(lines);
    for (std::string line; std::getline(in, line);) {
      auto j = nlohmann::json::parse(line, nullptr, false);
      if (j.is_object() && j.value("event", "") == "checkpoint") *bytes = j["bytes"].get<int64_t>();
    }
    std::filesystem::remove_all(ckpt_dir);
    return Median(IterationSeconds(lines, 2));
  };
  std::vector<double> none, async, sync;
  int64_t bytes = 0;
  for (int r = 0; r < o.train_rounds; ++r) {
    none.push_back(run("none", r, &bytes));
    async.push_back(run("async", r, &bytes));
    sync.push_back(run("sync", r, &bytes));
  }
  const double plain = Median(none), ours = Median(async) - plain, peer = Median(sync) - plain;
  return {{"op", "async_stall"}, {"topology", "dp1xtp1 (sublet-train)"}, {"bytes", bytes},
          {"how", fmt::format("sublet-train --model {} --global-batch {} --seq-len {}: "
                              "--checkpoint-every 1, async vs --sync-checkpoint",
                              o.train_model, o.train_batch, o.train_seq)},
          {"iteration_without_s", plain}, {"iteration_async_s", Median(async)},
          {"iteration_sync_s", Median(sync)}, {"ours_s", ours},
          {"peer", "the sync save's stall (same runs)"}, {"peer_s", peer},
          {"ratio", ours / peer}, {"target", "<= 0.1"}};
}

}  // namespace

Report RunCkptBench(const CkptBenchOptions& o, const std::string& command) {
  if (o.tensors < 3 || o.tensors % 3 != 0 || o.dp < 1 || o.tp < 1 || o.repeats < 1 ||
      o.size_mib < 1 || o.train_steps < 5 || o.train_rounds < 1) {
    throw std::runtime_error(
        "ckpt: --tensors must be a positive multiple of 3 (value, adam.m, adam.v per "
        "parameter); --dp, --tp, --repeats, --size-mib and --train-rounds must be >= 1, "
        "--train-steps >= 5 (2 warm-up steps and at least 2 iterations)");
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
                           {"peer", "sequential write, same writeback, fdatasync"}, {"peer_gbps", gb / write},
                           {"ratio", write / save}, {"pairwise_ratio", Median(save_ratio)},
                           {"best_ratio", Min(write_s) / Min(save_s)}, {"target", ">= 0.8"}});
    report.rows.push_back({{"op", "snapshot_stall"}, {"topology", topo}, {"bytes", bench.bytes()},
                           {"how", "SaveAsync copies into staging"}, {"ours_s", snapshot},
                           {"first_s", first_snapshot}, {"peer", "our sync save"},
                           {"peer_s", save}, {"ratio", snapshot / save}, {"target", "-"}});
    report.rows.push_back({{"op", "load"}, {"topology", topo}, {"bytes", bench.bytes()},
                           {"ours_s", load}, {"ours_gbps", gb / load},
                           {"peer", "sequential read"}, {"peer_gbps", gb / read},
                           {"ratio", read / load}, {"pairwise_ratio", Median(load_ratio)},
                           {"best_ratio", Min(read_s) / Min(load_s)}, {"target", ">= 0.8"}});
  }
  // After the library's phases, with their buffers freed: the trainer needs
  // its own 2.4 GB (state and the spare copy).
  if (opts.train) report.rows.push_back(TrainerStall(opts, dir));
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
      "(the same bytes written to one file in 16 MiB writes, each followed by "
      "sync_file_range of what it wrote, as our files do, then fdatasync) and our "
      "synchronous save (shards, checksums, fsyncs, MANIFEST, COMMIT, rename). Then the "
      "snapshot stall: how long SaveAsync blocks copying into staging (median of --repeats "
      "after a first that allocates), for reference. Then --repeats "
      "times our load of the last checkpoint (verifying every checksum) and a sequential "
      "read of the peer's file, with the page cache dropped before each when possible "
      "(root), else both warm. Save and load: ratio = the peer's median time over ours "
      "(= ours_gbps / peer_gbps as printed); pairwise_ratio: the median of the ratios of "
      "adjacent pairs; best_ratio: the fastest peer over our fastest; with several ranks, "
      "the slowest rank's. Last, the async stall with the writer running: --train-rounds "
      "rounds of three sublet-train runs (one rank, one OpenBLAS thread, --train-model, "
      "--train-steps steps of --train-batch x --train-seq tokens): no checkpointing, "
      "--checkpoint-every 1 (async, double buffered) and --checkpoint-every 1 "
      "--sync-checkpoint; each run's median whole iteration (elapsed_s between log lines, 2 "
      "warm-up steps dropped), medians over rounds; the async and sync stalls are those "
      "runs' iterations minus the one without, ratio = async / sync (target <= 0.1).");
  c->add_option("--size-mib", o->size_mib)->capture_default_str();
  c->add_option("--tensors", o->tensors)->capture_default_str();
  c->add_option("--dp", o->dp)->capture_default_str();
  c->add_option("--tp", o->tp)->capture_default_str();
  c->add_option("--repeats", o->repeats)->capture_default_str();
  c->add_option("--dir", o->dir, "parent directory for the scratch files")->capture_default_str();
  c->add_flag("!--no-drop-caches", o->drop_caches, "keep the page cache warm for both reads");
  c->add_option("--train-model", o->train_model)->capture_default_str();
  c->add_option("--train-steps", o->train_steps)->capture_default_str();
  c->add_option("--train-batch", o->train_batch)->capture_default_str();
  c->add_option("--train-seq", o->train_seq)->capture_default_str();
  c->add_option("--train-rounds", o->train_rounds)->capture_default_str();
  c->add_flag("!--no-train", o->train, "skip the sublet-train stall runs");
  return {c, [o](const std::string& command) { return RunCkptBench(*o, command); }};
}

}  // namespace sublet::bench

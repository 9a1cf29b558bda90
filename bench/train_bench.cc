// sublet-bench train: three measurements of the host trainer (issue 4), each
// against a baseline measured in the same run.
//
//  1. one_rank: sublet-train --model small on one rank; its model FLOP/s
//     against OpenBLAS sgemm (1024^3, same thread count), the two alternated
//     over rounds. Model FLOPs per token (PaLM appendix
//     B): 6 * N + 12 * L * T * w, N every parameter (the tied head is a GEMM
//     over the token embedding), L layers, T the sequence length, w the width;
//     the causal mask is not discounted. Target: ratio >= 0.5.
//  2. dp2_link: two emulated nodes (network namespaces, a veth pair shaped
//     with tc tbf at --link-rate), one sublet-train rank in each (DP 2, TP 1,
//     TCP between them): step time with the bucketed all-reduce overlapped
//     with backward, serialized after it, and compute alone (each rank
//     training its half of the batch as a world of one, both at once). T_comm
//     is the gradient bytes all-reduced alone over the same link. Hidden
//     fraction (T_compute + T_comm - T_overlap) / T_comm; target >= 0.8.
//  3. tp_layer: a column-parallel layer over the same link, 2 ranks:
//     collective matmul (4 chunks) against all-gather then one GEMM, with n
//     chosen so that the GEMM takes about as long as the all-gather
//     (n = sgemm FLOP/s / link bytes/s, then calibrated). Target >= 1.2x.
//     tp_layer_trainer: the same at the trainer's own shape (no target).
// Every step time is one statistic (StepSeconds): per step the slower rank's
// whole iteration, median over steps, median over rounds.
#include "bench/train_bench.h"

#include <cblas.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "bench/process.h"
#include "bench/shaped_link.h"
#include "fmt/format.h"
#include "worker/runtime/trainer.h"
#include "worker/train/gpt_params.h"

namespace sublet::bench {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

struct Options {
  std::string model = "small";
  int batch = 8;
  int seq = 128;
  int steps = 16;  // the median skips 2 warm-up steps
  int threads = 1;
  std::string link_rate = "1gbit";
  int repeats = 5;
  int rounds = 5;
  bool one_rank = true, dp = true, tp = true;
  // Hidden: the rank half (train_bench_rank.cc).
  std::string rank_helper;
  int64_t bytes = 0, m_local = 512, k = 1024, n = 0;
  int chunks = 4;
};


// A step's seconds in one run: for each step index the slower side's whole
// iteration (a synchronous data-parallel step waits for the slower rank, and
// this VM's two cores differ by up to a quarter for seconds at a time), then
// the median over steps after 2 warm-up steps. Every row uses this one
// statistic, over the log of each rank of the run.
double StepSeconds(const std::vector<std::string>& logs) {
  std::vector<double> slower;
  for (const std::string& log : logs) {
    const std::vector<double> it = IterationSeconds(ReadAll(log), 2);
    if (slower.empty()) slower.assign(it.size(), 0.0);
    if (it.size() != slower.size()) throw std::runtime_error("the ranks logged different step counts");
    for (size_t i = 0; i < it.size(); ++i) slower[i] = std::max(slower[i], it[i]);
  }
  return Median(slower);
}

// Median of `calls` sgemm 1024^3 at `threads` OpenBLAS threads, in GFLOP/s.
double SgemmGflops(int threads, int calls = 5) {
  openblas_set_num_threads(threads);
  constexpr int kN = 1024;
  std::vector<float> a(kN * kN, 0.5f), b(kN * kN, 0.25f), c(kN * kN);
  std::vector<double> rates;
  for (int r = 0; r < calls + 1; ++r) {  // the first call warms up
    const auto t0 = Clock::now();
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, kN, kN, kN, 1.0f, a.data(), kN,
                b.data(), kN, 0.0f, c.data(), kN);
    const double s = std::chrono::duration<double>(Clock::now() - t0).count();
    if (r > 0) rates.push_back(2.0 * kN * kN * kN / s / 1e9);
  }
  return Median(rates);
}

struct ModelFacts {
  int64_t params = 0;
  double flops_per_token = 0;
};

ModelFacts Facts(const std::string& model, int seq) {
  auto c = train::GptPreset(model);
  if (!c.ok()) throw std::runtime_error(std::string(c.status().message()));
  const int64_t w = c->width, L = c->layers;
  ModelFacts f;
  f.params = L * (12 * w * w + 13 * w) + c->vocab * w + c->max_seq * w + 2 * w;
  f.flops_per_token = 6.0 * f.params + 12.0 * L * seq * w;
  return f;
}

std::vector<std::string> TrainArgs(const Options& o, int global_batch, const std::string& sched,
                                   const std::string& log) {
  return {BinDir() + "/sublet-train", "--model", o.model, "--steps", std::to_string(o.steps),
          "--global-batch", std::to_string(global_batch), "--seq-len", std::to_string(o.seq),
          "--dp-schedule", sched, "--log-json", log};
}

// Rounds alternate the sgemm baseline and a trainer run, so that load from
// elsewhere on the machine hits both alike; medians over rounds.
void OneRank(const Options& o, const std::string& dir, Report* report) {
  const ModelFacts f = Facts(o.model, o.seq);
  const std::string out = dir + "/one_rank.log";
  std::vector<double> sgemms, steps;
  for (int r = 0; r < o.rounds; ++r) {
    sgemms.push_back(SgemmGflops(o.threads));
    fs::remove(out);  // sublet-train appends
    pid_t pid = Spawn(TrainArgs(o, o.batch, "overlap", out),
                      {{"OPENBLAS_NUM_THREADS", std::to_string(o.threads)}}, "/dev/null");
    WaitAll({pid}, std::chrono::seconds(600), "one-rank sublet-train");
    steps.push_back(StepSeconds({out}));
  }
  const double sgemm = Median(sgemms);
  const double tokens_per_s = o.batch * o.seq / Median(steps);
  const double gflops = tokens_per_s * f.flops_per_token / 1e9;
  report->machine["sgemm_gflops"] = sgemm;
  report->rows.push_back({{"case", "one_rank"}, {"model", o.model},
                          {"shape", fmt::format("{}x{}", o.batch, o.seq)}, {"params", f.params},
                          {"tokens_per_s", tokens_per_s}, {"ours_gflops", gflops},
                          {"peer", "sgemm 1024^3"}, {"peer_gflops", sgemm},
                          {"ratio", gflops / sgemm}, {"target", ">= 0.5"},
                          {"met", gflops / sgemm >= 0.5}});
}

// Two processes, one per side of the link, each pinned to its own core:
// `helper` (stdout of side 0 to `out`) or, when it is empty, sublet-train
// ranks (a DP 2 job when `joined`, else each side a world of one on half the
// batch) that log to `out`.0 and `out`.1, one per side.
void RunPair(const Options& o, const ShapedLink& link, bool joined, const std::string& sched,
             const std::vector<std::string>& helper, const std::string& out) {
  std::vector<pid_t> pids;
  for (int side = 0; side < 2; ++side) {
    Env env = {{"OPENBLAS_NUM_THREADS", "1"}};
    if (joined) {
      env.insert(env.end(), {{"SUBLET_RANK", std::to_string(side)}, {"SUBLET_WORLD_SIZE", "2"},
                             {"SUBLET_LOCAL_RANK", "0"}, {"SUBLET_LOCAL_WORLD_SIZE", "1"},
                             {"SUBLET_NODE_NAME", "node-" + std::to_string(side)},
                             {"SUBLET_RENDEZVOUS", link.address(0) + ":29500"}});
    }
    // Every rank logs: side s to out.s (a joined side's rank is its side;
    // apart, each side is rank 0 of its own world).
    const std::string log = joined ? out + ".{rank}" : fmt::format("{}.{}", out, side);
    if (helper.empty()) fs::remove(fmt::format("{}.{}", out, side));  // sublet-train appends
    std::vector<std::string> argv =
        helper.empty() ? TrainArgs(o, joined ? o.batch : o.batch / 2, sched, log) : helper;
    // One core per emulated node: left to the scheduler, both ranks (and
    // their comm threads) sometimes share one core on a 2-core machine and
    // the step time doubles for a while.
    if (std::thread::hardware_concurrency() >= 2) {
      argv.insert(argv.begin(), {"taskset", "-c", std::to_string(side)});
    }
    const std::string stdout_to = !helper.empty() && side == 0 ? out : "/dev/null";
    pids.push_back(Spawn(link.Inside(side, argv), env, stdout_to));
  }
  WaitAll(pids, std::chrono::seconds(600), "ranks in the namespaces");
}

nlohmann::json HelperResult(const Options& o, const ShapedLink& link,
                            const std::vector<std::string>& args, const std::string& out) {
  std::vector<std::string> argv = {SelfExe(), "train", "--rank-helper"};
  argv.insert(argv.end(), args.begin(), args.end());
  argv.insert(argv.end(), {"--threads", std::to_string(o.threads), "--repeats",
                           std::to_string(o.repeats)});
  RunPair(o, link, true, "", argv, out);
  return nlohmann::json::parse(ReadAll(out));
}

void DataParallel(const Options& o, const ShapedLink& link, const std::string& dir,
                  Report* report) {
  const ModelFacts f = Facts(o.model, o.seq);
  const std::string log = dir + "/dp.log";
  // Rounds interleave the three runs, so a burst of load on the shared
  // machine hits all of them alike; each figure is the median over rounds.
  std::vector<double> overlaps, serials, computes;
  for (int r = 0; r < o.rounds; ++r) {
    // The same statistic for all three (StepSeconds over both sides' logs).
    const std::vector<std::string> logs = {log + ".0", log + ".1"};
    RunPair(o, link, true, "overlap", {}, log);
    overlaps.push_back(StepSeconds(logs));
    RunPair(o, link, true, "serial", {}, log);
    serials.push_back(StepSeconds(logs));
    RunPair(o, link, false, "overlap", {}, log);
    computes.push_back(StepSeconds(logs));
  }
  const double overlap = Median(overlaps), serial = Median(serials), compute = Median(computes);
  const double comm = HelperResult(o, link, {"allreduce", "--bytes", std::to_string(4 * f.params)},
                                   dir + "/allreduce.json")["allreduce_s"];
  const double hidden = (compute + comm - overlap) / comm;
  report->rows.push_back({{"case", "dp2_link"}, {"grad_bytes", 4 * f.params},
                          {"ours_step_s", overlap}, {"peer", "serialized all-reduce"},
                          {"peer_step_s", serial}, {"ratio", serial / overlap},
                          {"compute_s", compute}, {"comm_s", comm}, {"hidden", hidden},
                          {"target", "hidden >= 0.8"}, {"met", hidden >= 0.8}});
}

void TensorParallelLayer(const Options& o, const ShapedLink& link, double link_bytes_per_s,
                         const std::string& dir, Report* report) {
  const double sgemm = report->machine.value("sgemm_gflops", 0.0) > 0
                           ? report->machine["sgemm_gflops"].get<double>()
                           : SgemmGflops(o.threads);
  report->machine["sgemm_gflops"] = sgemm;
  // GEMM 2*(2 m k) n / R equals all-gather m k 4 / B when n = R / B; one
  // calibration run then scales n by the measured all-gather / GEMM times
  // (the GEMM runs slower beside the transfer than alone).
  auto measure_at = [&](int64_t m_local, int64_t k, int64_t n, int chunks) {
    return HelperResult(o, link,
                        {"tp-layer", "--m-local", std::to_string(m_local), "--k",
                         std::to_string(k), "--n", std::to_string(n), "--chunks",
                         std::to_string(chunks)},
                        dir + "/tp.json");
  };
  auto measure = [&](int64_t n) { return measure_at(o.m_local, o.k, n, 4); };
  auto add_row = [&](const std::string& name, const std::string& shape, int chunks,
                     const nlohmann::json& r, const std::string& target) {
    const double ours = r["collective_matmul_s"], peer = r["gather_then_gemm_s"];
    report->rows.push_back({{"case", name}, {"shape", shape}, {"chunks", chunks},
                            {"ours_s", ours}, {"peer", "all-gather then GEMM"}, {"peer_s", peer},
                            {"ratio", peer / ours}, {"allgather_s", r["allgather_s"]},
                            {"gemm_s", r["gemm_s"]}, {"target", target},
                            {"met", target == "-" || peer / ours >= 1.2}});
  };
  auto round64 = [](double v) { return std::max<int64_t>(64, std::llround(v / 64) * 64); };
  int64_t n = o.n;
  if (n <= 0) {
    n = round64(sgemm * 1e9 / link_bytes_per_s);
    const nlohmann::json c = measure(n);
    n = round64(n * c["allgather_s"].get<double>() / c["gemm_s"].get<double>());
  }
  add_row("tp_layer", fmt::format("2x{}x{} * {}x{}", o.m_local, o.k, o.k, n), 4, measure(n),
          ">= 1.2");
  // The trainer's own layer: --model's first MLP layer (column-parallel,
  // TP 2) on --global-batch x --seq-len rows, at sublet-train's default
  // --tp-chunks, whatever the GEMM / all-gather balance there is.
  auto c = train::GptPreset(o.model);
  if (!c.ok()) throw std::runtime_error(std::string(c.status().message()));
  const int64_t rows_local = int64_t{o.batch} * o.seq / 2, mlp_local = c->mlp() / 2;
  const int chunks = worker::TrainerOptions{}.tp_chunks;
  add_row("tp_layer_trainer",
          fmt::format("2x{}x{} * {}x{} ({} fc1, {}x{} tokens)", rows_local, c->width, c->width,
                      mlp_local, o.model, o.batch, o.seq),
          chunks, measure_at(rows_local, c->width, mlp_local, chunks), "-");
}

double RateBytesPerSecond(const std::string& rate) {
  double v = std::stod(rate);
  if (rate.find("gbit") != std::string::npos) return v * 1e9 / 8;
  if (rate.find("mbit") != std::string::npos) return v * 1e6 / 8;
  throw std::runtime_error("--link-rate: use NNgbit or NNmbit");
}

Report RunTrainBench(const Options& o, const std::string& command) {
  Report report;
  report.area = "train";
  report.command = command;
  report.machine["cores"] = std::thread::hardware_concurrency();
  report.machine["gemm_threads"] = o.threads;
  const std::string dir = fmt::format("/tmp/sublet-bench-train-{}", getpid());
  fs::create_directories(dir);
  if (o.one_rank) OneRank(o, dir, &report);
  if (o.dp || o.tp) {
    auto link = ShapedLink::Create(o.link_rate);
    if (!link.ok()) throw std::runtime_error(std::string(link.status().message()));
    report.machine["link_rate"] = o.link_rate + " (tc tbf, veth between two netns)";
    if (o.dp) DataParallel(o, **link, dir, &report);
    if (o.tp) TensorParallelLayer(o, **link, RateBytesPerSecond(o.link_rate), dir, &report);
  }
  fs::remove_all(dir);
  return report;
}

}  // namespace

std::pair<CLI::App*, std::function<Report(const std::string&)>> AddTrainCommand(CLI::App& app) {
  auto o = std::make_shared<Options>();
  CLI::App* c = app.add_subcommand(
      "train",
      "Host trainer speed; needs root (network namespaces). one_rank: --rounds rounds, each "
      "an OpenBLAS sgemm 1024^3 rate (median of 5 calls) then sublet-train --model M "
      "--global-batch B --seq-len T on one rank (median step after 2 warm-up steps), both at "
      "--threads OpenBLAS threads; model FLOP/s = tokens/s * (6*N + 12*L*T*w), N every "
      "parameter, L layers, w width (causal mask not discounted); medians over rounds. "
      "dp2_link: two network namespaces joined by a veth pair shaped with tc tbf at "
      "--link-rate, one rank in each pinned to its own core (DP 2, TP 1, TCP, 1 OpenBLAS "
      "thread each); per round "
      "the step time with the DP all-reduce overlapped with backward, serialized after it, "
      "and compute alone (each side a world of one on half the batch, both at once; the slower "
      "side); T_comm "
      "= the gradient bytes all-reduced alone over the link (median of --repeats); hidden = "
      "(T_compute + T_comm - T_overlap) / T_comm. tp_layer: over the same link, 2 ranks, "
      "column-parallel forward all-gather(X: 2 x m_local x k) * W (k x n): collective matmul "
      "(4 chunks) against all-gather then one GEMM; n starts at sgemm FLOP/s / link bytes/s "
      "and one calibration run scales it so that the GEMM takes as long as the all-gather; "
      "--repeats interleaved, medians; tp_layer_trainer: the same at the trainer's own shape "
      "(--model's first MLP layer at TP 2 on --global-batch x --seq-len rows, sublet-train's "
      "default --tp-chunks). Every step time is one statistic: per step, the slower rank's "
      "whole iteration (elapsed_s between log lines), median over steps after 2 warm-up "
      "steps, median over rounds. The namespaces are deleted at the end.");
  c->add_option("--model", o->model)->capture_default_str();
  c->add_option("--global-batch", o->batch)->capture_default_str();
  c->add_option("--seq-len", o->seq)->capture_default_str();
  c->add_option("--steps", o->steps, "optimizer steps per trainer run")->capture_default_str();
  c->add_option("--threads", o->threads, "OpenBLAS threads for the one-rank model and sgemm")
      ->capture_default_str();
  c->add_option("--link-rate", o->link_rate)->capture_default_str();
  c->add_option("--repeats", o->repeats, "link measurements per helper run (medians)")
      ->capture_default_str();
  c->add_option("--rounds", o->rounds, "dp2_link: rounds of overlap, serial, compute runs")
      ->capture_default_str();
  c->add_option("--tp-m-local", o->m_local)->capture_default_str();
  c->add_option("--tp-k", o->k)->capture_default_str();
  c->add_option("--tp-n", o->n, "0: sgemm FLOP/s / link bytes/s")->capture_default_str();
  c->add_flag("!--no-one-rank", o->one_rank);
  c->add_flag("!--no-dp", o->dp);
  c->add_flag("!--no-tp", o->tp);
  c->add_option("--rank-helper", o->rank_helper)->group("");
  c->add_option("--bytes", o->bytes)->group("");
  c->add_option("--m-local", o->m_local)->group("");
  c->add_option("--k", o->k)->group("");
  c->add_option("--n", o->n)->group("");
  c->add_option("--chunks", o->chunks)->group("");
  return {c, [o](const std::string& command) -> Report {
            if (!o->rank_helper.empty()) {
              std::exit(RunTrainRankHelper(o->rank_helper, o->bytes, o->m_local, o->k, o->n,
                                           o->chunks, o->repeats, o->threads));
            }
            return RunTrainBench(*o, command);
          }};
}

}  // namespace sublet::bench

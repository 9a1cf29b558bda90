// sublet-bench reclaim: how long a reclaim takes from the admin's call to the
// node handed over, against what the checkpoint it forces must cost at the
// very least: its bytes divided by the write bandwidth of the same
// filesystem (an fsynced sequential write of the same byte count with the
// writeback our checkpoint files get), measured in the same run once the
// cluster is gone, so nothing competes with it. Target (issue 21):
// reclaim_s <= 1.1 * bytes / bandwidth + 0.2 s.
//
// Each repeat runs a real local cluster (`sublet up`: a coordinator and two
// workers with emulated GPUs), submits a DP2 x TP2 sublet-train job on both
// nodes (--model medium by default: 1.2 GB of state), waits until it is
// training, reclaims one node and follows the reclaim until the node is
// `reclaimed`. The checkpoint's size and persist time come from the trainer's
// own log (--log-json); reclaim_s minus that persist time is what the rest
// (notice, the step boundary, agreement, exit, handover) cost.
#include "bench/reclaim_bench.h"

#include "bench/process.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <memory>
#include <stdexcept>
#include <thread>

#include "client/client.h"
#include "protocols/curve.h"
#include "fmt/format.h"

namespace sublet::bench {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

struct Options {
  std::string model = "medium";
  int global_batch = 4;
  int seq_len = 32;
  int repeats = 3;
  std::string deadline = "60s";
  std::string dir;  // empty: a fresh directory under /tmp
};

double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

// `sublet up` in its own process group; killed (with its daemons) at the end.
class LocalCluster {
 public:
  LocalCluster(const std::string& dir, const std::string& endpoint) {
    pid_ = fork();
    if (pid_ < 0) throw std::runtime_error("fork failed");
    if (pid_ == 0) {
      setpgid(0, 0);
      int log = open((dir + "/up.log").c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      dup2(log, 1);
      dup2(log, 2);
      std::string up = BinDir() + "/sublet";
      execl(up.c_str(), up.c_str(), "up", "--workers", "2", "--gpus", "2", "--listen",
            endpoint.c_str(), "--state-dir", (dir + "/cluster").c_str(), nullptr);
      _exit(127);
    }
  }
  ~LocalCluster() {
    kill(pid_, SIGTERM);  // sublet up stops its daemons, then exits
    int status = 0;
    waitpid(pid_, &status, 0);
  }

 private:
  pid_t pid_ = -1;
};

template <typename Pred>
void WaitUntil(Pred pred, const std::string& what, std::chrono::seconds limit) {
  const auto deadline = Clock::now() + limit;
  while (!pred()) {
    if (Clock::now() > deadline) throw std::runtime_error("timed out waiting for " + what);
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

// The trainer's log: the checkpoint written for the preemption. Rank 0 logs
// to train.jsonl in its working directory (the sandbox's, which only the
// rank's user may write): <cluster>/node-*/jobs/<id>/attempt-*/work.
nlohmann::json PreemptionCheckpoint(const std::string& cluster_dir, int64_t job, int64_t step) {
  nlohmann::json found;
  std::error_code error;
  for (const auto& node : fs::directory_iterator(cluster_dir, error)) {
    const fs::path jobs = node.path() / "jobs" / std::to_string(job);
    for (const auto& attempt : fs::directory_iterator(jobs, error)) {
      std::ifstream in(attempt.path() / "work" / "train.jsonl");
      std::string line;
      while (std::getline(in, line)) {
        nlohmann::json j = nlohmann::json::parse(line, nullptr, false);
        if (!j.is_discarded() && j.value("event", "") == "checkpoint" && j.value("step", -1) == step) {
          found = j;
        }
      }
    }
  }
  return found;
}

nlohmann::json RunOnce(const Options& o, int repeat) {
  const std::string dir = fmt::format("{}/run-{}", o.dir, repeat);
  fs::create_directories(dir);
  const std::string endpoint = fmt::format("tcp://127.0.0.1:{}", 29000 + (getpid() + repeat) % 900);
  auto cluster = std::make_unique<LocalCluster>(dir, endpoint);
  // `sublet up` makes the coordinator's key before starting anything.
  const std::string key_file = dir + "/cluster/coordinator/coordinator.key";
  absl::StatusOr<protocols::CurveKeyPair> keys = protocols::ReadKeyFile(key_file);
  WaitUntil([&] { return (keys = protocols::ReadKeyFile(key_file)).ok(); }, "the coordinator key",
            std::chrono::seconds(60));
  client::Client tenant({.endpoint = endpoint, .token = "dev-token",
                         .coordinator_key = keys->public_key,
                         .timeout = std::chrono::milliseconds(5000)});
  client::Client admin({.endpoint = endpoint, .token = "admin-token",
                        .coordinator_key = keys->public_key,
                        .timeout = std::chrono::milliseconds(5000)});
  WaitUntil([&] {
    auto nodes = admin.ListNodes();
    return nodes.ok() && nodes->size() == 2 &&
           std::all_of(nodes->begin(), nodes->end(),
                       [](const auto& n) { return n.state == "ready"; });
  }, "two ready nodes", std::chrono::seconds(60));

  protocols::JobSpec spec;
  spec.name = "reclaim-bench";
  spec.nodes = 2;
  spec.gpus_per_node = 2;
  spec.tensor_parallel = 2;
  spec.elastic_min_nodes = 1;
  spec.command = {BinDir() + "/sublet-train", "--model", o.model, "--steps", "100000",
                  "--seed", "1", "--tp", "2", "--global-batch", std::to_string(o.global_batch),
                  "--seq-len", std::to_string(o.seq_len), "--log-json", "train.jsonl"};
  auto id = tenant.Submit(spec);
  if (!id.ok()) throw std::runtime_error("submit: " + std::string(id.status().message()));
  WaitUntil([&] {
    auto job = tenant.GetJob(*id);
    return job.ok() && job->state == "running" && job->progress.step >= 3;
  }, "the job to train 3 steps", std::chrono::seconds(600));

  protocols::ReclaimRequest request{{"node-2"}, 0, 60000, "sublet-bench reclaim"};
  const auto start = Clock::now();
  auto reclaim = admin.Reclaim(request);
  if (!reclaim.ok()) throw std::runtime_error("reclaim: " + std::string(reclaim.status().message()));
  protocols::ReclaimInfo info = *reclaim;
  WaitUntil([&] {
    auto now = admin.ListReclaims(info.id);
    if (now.ok() && now->size() == 1) info = (*now)[0];
    return info.state == "reclaimed";
  }, "the node to be reclaimed", std::chrono::seconds(120));
  const double reclaim_s = Seconds(Clock::now() - start);
  const double server_s = (info.reclaimed_unix_ms - info.created_unix_ms) / 1000.0;
  // The node can be handed over before the job's ranks elsewhere finished.
  WaitUntil([&] {
    auto now = admin.ListReclaims(info.id);
    if (now.ok() && now->size() == 1) info = (*now)[0];
    return !info.jobs.empty() && info.jobs[0].state != "preempting";
  }, "the job to acknowledge", std::chrono::seconds(120));
  if (info.jobs.empty() || info.jobs[0].state != "acknowledged") {
    throw std::runtime_error("the job did not acknowledge the reclaim");
  }
  const int64_t step = info.jobs[0].checkpoint_step;
  nlohmann::json ckpt = PreemptionCheckpoint(dir + "/cluster", *id, step);
  if (ckpt.is_null()) throw std::runtime_error("no checkpoint event for step " + std::to_string(step));
  const int64_t bytes = ckpt["bytes"].get<int64_t>();
  const double persist_s = ckpt["persist_s"].get<double>();
  (void)tenant.Cancel(*id);
  cluster.reset();  // sublet up stops its daemons and with them every rank
  // The same filesystem the checkpoints went to, the same byte count, with
  // nothing else running.
  std::vector<double> writes;
  for (int i = 0; i < 3; ++i) writes.push_back(FsyncedWriteSeconds(dir + "/write-probe", bytes));
  const double write_gbps = bytes / Median(writes) / 1e9;
  const double bound_s = 1.1 * bytes / (write_gbps * 1e9) + 0.2;
  return {{"repeat", repeat},
          {"checkpoint_step", step},
          {"checkpoint_bytes", bytes},
          {"trainer_persist_s", persist_s},
          {"write_gbps", write_gbps},
          {"reclaim_s", reclaim_s},
          {"reclaim_minus_persist_s", reclaim_s - persist_s},
          {"coordinator_reclaim_s", server_s},
          {"target_s", bound_s},
          {"ratio_to_target", reclaim_s / bound_s},
          {"met", reclaim_s <= bound_s}};
}

}  // namespace

std::pair<CLI::App*, std::function<Report(const std::string&)>> AddReclaimCommand(CLI::App& app) {
  auto o = std::make_shared<Options>();
  CLI::App* sub = app.add_subcommand(
      "reclaim",
      "Reclaim latency: per repeat, a local cluster (`sublet up`, 2 workers x 2 emulated GPUs) "
      "runs a DP2 x TP2 sublet-train job; once it trains, node-2 is reclaimed and the time from "
      "the reclaim call to the node `reclaimed` is measured (the trainer notices at a step "
      "boundary, saves a checkpoint, exits 75). Baseline from the same run, once the "
      "cluster has stopped: the checkpoint's bytes over the fsynced sequential write "
      "bandwidth of the same filesystem (median of 3 writes of that many bytes, with the "
      "writeback our checkpoint files get). Target: reclaim_s <= 1.1 * bytes / bandwidth + "
      "0.2 s; reclaim_minus_persist_s is reclaim_s less the trainer's own persist time.");
  sub->add_option("--model", o->model, "sublet-train preset (tiny|small|medium)")
      ->capture_default_str();
  sub->add_option("--global-batch", o->global_batch, "sequences per step")->capture_default_str();
  sub->add_option("--seq-len", o->seq_len, "tokens per sequence");
  sub->add_option("--repeats", o->repeats, "fresh clusters, one reclaim each");
  sub->add_option("--dir", o->dir, "working directory (default: a new one under /tmp)");
  return {sub, [o](const std::string& command) {
            if (o->dir.empty()) {
              std::string tmpl = "/tmp/sublet-bench-reclaim-XXXXXX";
              o->dir = mkdtemp(tmpl.data());
            }
            Report report;
            report.area = "reclaim";
            report.command = command;
            std::vector<double> times;
            for (int r = 0; r < o->repeats; ++r) {
              nlohmann::json row = RunOnce(*o, r);
              times.push_back(row["reclaim_s"].get<double>());
              report.rows.push_back(std::move(row));
            }
            report.machine = {{"model", o->model},
                              {"global_batch", o->global_batch},
                              {"seq_len", o->seq_len},
                              {"median_reclaim_s", Median(times)},
                              {"dir", o->dir}};
            return report;
          }};
}

}  // namespace sublet::bench

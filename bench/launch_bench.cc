#include "bench/launch_bench.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <memory>
#include <thread>
#include <stdexcept>
#include <vector>

#include "fmt/format.h"
#include "worker/confinement.h"
#include "worker/job_sandbox.h"
#include "worker/process_launcher.h"

namespace sublet::bench {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

double Ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

constexpr uid_t kBenchUid = 231777;

// Every rank's stdout is one FIFO; a rank is running once its `echo` wrote
// its line there. Reads until `ranks` lines arrived (60 s at most).
void AwaitLines(int fifo, int ranks) {
  int lines = 0;
  const auto deadline = Clock::now() + std::chrono::seconds(60);
  char buffer[256];
  while (lines < ranks) {
    if (Clock::now() > deadline) throw std::runtime_error("ranks did not start within 60 s");
    pollfd p{.fd = fifo, .events = POLLIN, .revents = 0};
    poll(&p, 1, 100);
    const ssize_t n = read(fifo, buffer, sizeof(buffer));
    for (ssize_t i = 0; i < n; ++i) lines += buffer[i] == '\n';
  }
}

void ReapAll(worker::ProcessLauncher& launcher, std::vector<int>& pids) {
  const auto deadline = Clock::now() + std::chrono::seconds(60);
  while (!pids.empty() && Clock::now() < deadline) {
    for (const worker::ProcessExit& exit : launcher.Reap()) std::erase(pids, exit.pid);
    if (!pids.empty()) {
      pollfd p{.fd = launcher.wakeup_fd(), .events = POLLIN, .revents = 0};
      poll(&p, 1, 50);
    }
  }
}

struct Sample {
  double total_ms = 0;    // placement received -> every rank running
  double sandbox_ms = 0;  // of which: the job's sandbox (storage, namespaces, mounts)
};

class Bench {
 public:
  explicit Bench(const LaunchBenchOptions& o) : o_(o) {
    root_ = fmt::format("{}/sublet-launch-bench-{}", o.dir, getpid());
    fs::remove_all(root_);
    fs::create_directories(root_ + "/work/jobs");
    fifo_path_ = root_ + "/work/ranks.fifo";
    if (mkfifo(fifo_path_.c_str(), 0666) != 0) throw std::runtime_error("mkfifo failed");
    fifo_ = open(fifo_path_.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    absl::StatusOr<std::unique_ptr<worker::SandboxConfinement>> made =
        worker::SandboxConfinement::Create();
    if (!made.ok()) throw std::runtime_error(made.status().ToString());
    confinement_ = *std::move(made);
    plain_ = std::make_unique<worker::PosixProcessLauncher>(worker::PosixProcessLauncher::Options{});
    confined_ = std::make_unique<worker::PosixProcessLauncher>(worker::PosixProcessLauncher::Options{
        .confinement = confinement_.get(),
        .environment = worker::PosixProcessLauncher::Options::Environment::kAllowList});
  }
  ~Bench() {
    if (fifo_ >= 0) close(fifo_);
    std::error_code ignored;
    fs::remove_all(root_, ignored);
  }

  Sample Run(bool confine, int job) {
    const std::string rank_dir = fmt::format("{}/work/jobs/{}/work", root_, job);
    fs::create_directories(rank_dir);
    if (chown(rank_dir.c_str(), kBenchUid, kBenchUid) != 0) throw std::runtime_error("chown");
    worker::PosixProcessLauncher& launcher = confine ? *confined_ : *plain_;
    Sample sample;
    const auto start = Clock::now();
    std::unique_ptr<worker::JobSandbox> sandbox;
    if (confine) {
      absl::StatusOr<std::unique_ptr<worker::JobSandbox>> started = worker::JobSandbox::Start(
          {.label = fmt::format("bench job {}", job), .uid = kBenchUid, .gid = kBenchUid,
           .storage_root = root_ + "/storage", .tenant = "bench", .job = std::to_string(job),
           .work_root = root_ + "/work", .rank_dir = rank_dir});
      if (!started.ok()) throw std::runtime_error(started.status().ToString());
      sandbox = *std::move(started);
      sample.sandbox_ms = Ms(Clock::now() - start);
    }
    std::vector<int> pids;
    for (int r = 0; r < o_.ranks; ++r) {
      worker::LaunchSpec spec;
      spec.argv = {"/bin/echo", "running"};
      spec.working_dir = rank_dir;
      spec.log_path = fifo_path_;
      spec.sandbox = sandbox ? &sandbox->handle() : nullptr;
      absl::StatusOr<int> pid = launcher.Launch(spec);
      if (!pid.ok()) throw std::runtime_error(pid.status().ToString());
      pids.push_back(*pid);
    }
    AwaitLines(fifo_, o_.ranks);
    sample.total_ms = Ms(Clock::now() - start);
    ReapAll(launcher, pids);
    if (sandbox) sandbox->Destroy();
    return sample;
  }

 private:
  const LaunchBenchOptions& o_;
  std::string root_, fifo_path_;
  int fifo_ = -1;
  std::unique_ptr<worker::SandboxConfinement> confinement_;
  std::unique_ptr<worker::PosixProcessLauncher> plain_, confined_;
};

}  // namespace

Report RunLaunchBench(const LaunchBenchOptions& o, const std::string& command) {
  if (geteuid() != 0) throw std::runtime_error("launch: confining ranks needs root");
  if (o.ranks < 1 || o.repeats < 1) throw std::runtime_error("launch: --ranks and --repeats >= 1");
  Bench bench(o);
  bench.Run(false, 1);  // warm the page cache for both variants
  bench.Run(true, 2);
  std::vector<double> plain, confined, sandbox;
  for (int i = 0; i < o.repeats; ++i) {
    plain.push_back(bench.Run(false, 10 + 2 * i).total_ms);
    Sample s = bench.Run(true, 11 + 2 * i);
    confined.push_back(s.total_ms);
    sandbox.push_back(s.sandbox_ms);
  }
  const double p = Median(plain), c = Median(confined), job = Median(sandbox);
  const double per_rank = (c - p - job) / o.ranks;
  Report report;
  report.area = "launch";
  report.command = command;
  report.machine = {{"cpus", std::thread::hardware_concurrency()}, {"ranks", o.ranks},
                    {"repeats", o.repeats}};
  report.rows.push_back({{"op", "placement_to_all_ranks_running"}, {"ours", "confined"},
                         {"ours_ms", c}, {"peer", "fork_exec"}, {"peer_ms", p},
                         {"ratio", c / p}, {"added_ms", c - p}});
  report.rows.push_back({{"op", "confinement_per_job"}, {"ours_ms", job}, {"target_ms", 50}});
  report.rows.push_back({{"op", "confinement_per_rank"}, {"ours_ms", per_rank}, {"target_ms", 5}});
  return report;
}

std::pair<CLI::App*, std::function<Report(const std::string&)>> AddLaunchCommand(CLI::App& app) {
  auto o = std::make_shared<LaunchBenchOptions>();
  CLI::App* s = app.add_subcommand(
      "launch",
      "Times one node's launch of a job's --ranks ranks (each runs /bin/echo), from the "
      "placement to every rank's line arriving: confined (the job's sandbox: storage, PID, "
      "mount and IPC namespaces, private /tmp, /dev/shm, /dev and /proc; each rank: joining "
      "it, uid drop, capabilities, fd closing, seccomp) against plain fork/exec through the "
      "same launcher, alternating, --repeats jobs each; medians. Needs root.");
  s->add_option("--ranks", o->ranks)->capture_default_str();
  s->add_option("--repeats", o->repeats)->capture_default_str();
  s->add_option("--dir", o->dir, "where the jobs' directories go")->capture_default_str();
  return {s, [o](const std::string& command) { return RunLaunchBench(*o, command); }};
}

}  // namespace sublet::bench

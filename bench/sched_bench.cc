#include "bench/sched_bench.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <thread>

#include "client/client.h"
#include "common/clock.h"
#include "coordinator/cluster.h"
#include "coordinator/coordinator.h"
#include "coordinator/fairness.h"
#include "coordinator/scheduler.h"
#include "fmt/format.h"

namespace sublet::bench {
namespace {

using Clock = std::chrono::steady_clock;

double Seconds(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

std::string TempDir(const std::string& parent, const std::string& tag) {
  std::string tmpl = parent + "/sublet-bench-" + tag + "-XXXXXX";
  char* made = mkdtemp(tmpl.data());
  if (!made) throw std::runtime_error("mkdtemp failed under " + parent);
  return made;
}

protocols::JobSpec BenchSpec(int i) {
  protocols::JobSpec s;
  s.name = fmt::format("bench-{}", i);
  s.nodes = 2;
  s.gpus_per_node = 2;
  s.command = {"sublet-train", "--model", "tiny", "--steps", "400"};
  s.env = {{"SUBLET_LOG_LEVEL", "info"}};
  s.max_restarts = 3;
  s.time_limit = absl::Hours(2);
  return s;
}

// fdatasync()s per second on `dir`: the bound every durable commit pays.
double FsyncRate(const std::string& dir) {
  std::string path = dir + "/fsync-probe";
  int fd = open(path.c_str(), O_CREAT | O_WRONLY | O_TRUNC, 0600);
  if (fd < 0) return 0;
  char block[4096] = {};
  const int n = 200;
  auto t0 = Clock::now();
  for (int i = 0; i < n; ++i) {
    if (pwrite(fd, block, sizeof(block), 0) < 0 || fdatasync(fd) != 0) break;
  }
  double s = Seconds(t0, Clock::now());
  close(fd);
  unlink(path.c_str());
  return n / s;
}

// The peer: what a service does without group commit, one SQLite
// transaction (one WAL fsync) per request, rows of the same shape.
double PerRequestCommitRate(const std::string& dir, int rows) {
  sqlite3* db = nullptr;
  sqlite3_open((dir + "/peer.db").c_str(), &db);
  sqlite3_exec(db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;"
                   "CREATE TABLE jobs (id INTEGER PRIMARY KEY, tenant TEXT, spec TEXT);"
                   "CREATE TABLE events (job_id INTEGER, message TEXT);",
               nullptr, nullptr, nullptr);
  sqlite3_stmt* job = nullptr;
  sqlite3_stmt* event = nullptr;
  sqlite3_prepare_v2(db, "INSERT INTO jobs VALUES (?1, 'bench', ?2)", -1, &job, nullptr);
  sqlite3_prepare_v2(db, "INSERT INTO events VALUES (?1, 'submitted')", -1, &event, nullptr);
  std::string spec = protocols::JobSpecToYaml(BenchSpec(0));
  auto t0 = Clock::now();
  for (int i = 0; i < rows; ++i) {
    sqlite3_exec(db, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr);
    sqlite3_bind_int(job, 1, i);
    sqlite3_bind_text(job, 2, spec.c_str(), -1, SQLITE_STATIC);
    sqlite3_step(job);
    sqlite3_reset(job);
    sqlite3_bind_int(event, 1, i);
    sqlite3_step(event);
    sqlite3_reset(event);
    sqlite3_exec(db, "COMMIT", nullptr, nullptr, nullptr);
  }
  double s = Seconds(t0, Clock::now());
  sqlite3_finalize(job);
  sqlite3_finalize(event);
  sqlite3_close(db);
  return rows / s;
}

// A coordinator for the bench in `dir`, on a free loopback port, with one
// tenant token; `plaintext` turns CURVE off (the wire security baseline).
coordinator::CoordinatorOptions BenchCoordinator(const std::string& dir, bool plaintext = false) {
  coordinator::CoordinatorOptions copts;
  copts.plaintext = plaintext;
  copts.listen = "tcp://127.0.0.1:0";
  copts.state_dir = dir + "/coordinator";
  copts.config.storage_root = dir + "/storage";
  copts.config.AddToken("bench-token", {coordinator::Role::kTenant, "bench"});
  return copts;
}

// Acknowledged submissions/s of --submissions from --clients threads to an
// in-process coordinator; `plaintext`: it and its clients without CURVE,
// otherwise as deployed, with CURVE and a pinned key.
double DurableSubmissions(const SchedBenchOptions& o, const std::string& dir,
                          bool plaintext = false) {
  const coordinator::CoordinatorOptions copts = BenchCoordinator(dir, plaintext);
  zmq::context_t context;
  RealClock clock;
  auto coord = coordinator::Coordinator::Create(copts, context, clock);
  if (!coord.ok()) throw std::runtime_error(std::string(coord.status().message()));
  std::atomic<bool> stop{false};
  std::thread server([&] { (*coord)->Run(stop); });

  std::atomic<int> acked{0};
  std::vector<std::thread> clients;
  auto t0 = Clock::now();
  for (int c = 0; c < o.clients; ++c) {
    clients.emplace_back([&, c] {
      client::Client cl({.endpoint = (*coord)->endpoint(),
                         .token = "bench-token",
                         .coordinator_key = (*coord)->public_key(),
                         .plaintext = plaintext,
                         .timeout = std::chrono::seconds(30)});
      for (int i = c; i < o.submissions; i += o.clients) {
        if (cl.Submit(BenchSpec(i)).ok()) ++acked;
      }
    });
  }
  for (std::thread& t : clients) t.join();
  double secs = Seconds(t0, Clock::now());
  stop = true;
  server.join();
  coord->reset();
  return acked / secs;
}

struct KilledResult {
  double per_s = 0;  // acknowledged submissions/s until the kill
  int acknowledged = 0;
  int failed = 0;      // calls the kill cut off (one per client)
  size_t stored = 0;   // jobs in the store after the SIGKILL
  int missing = 0;     // acknowledged ids not in it
};

// The coordinator in a child process, SIGKILLed (no shutdown, no final
// commit) by the client whose acknowledgement is number `kill_after`, while
// the others are still submitting; then the store is reopened and every
// acknowledged id looked up.
KilledResult DurableSubmissionsKilled(const SchedBenchOptions& o, const std::string& dir,
                                      int kill_after) {
  const coordinator::CoordinatorOptions copts = BenchCoordinator(dir);
  int hello[2];
  if (pipe(hello) != 0) throw std::runtime_error("pipe failed");
  const pid_t child = fork();
  if (child < 0) throw std::runtime_error("fork failed");
  if (child == 0) {  // no thread of the parent's runs here; the child makes its own
    close(hello[0]);
    zmq::context_t context;
    RealClock clock;
    auto coord = coordinator::Coordinator::Create(copts, context, clock);
    if (!coord.ok()) _exit(3);
    const std::string line = (*coord)->endpoint() + "\n" + (*coord)->public_key() + "\n";
    if (write(hello[1], line.data(), line.size()) != static_cast<ssize_t>(line.size())) _exit(4);
    close(hello[1]);
    std::atomic<bool> stop{false};
    (*coord)->Run(stop);  // until the SIGKILL
    _exit(0);
  }
  close(hello[1]);
  std::string text;
  char buf[256];
  for (ssize_t n; std::count(text.begin(), text.end(), '\n') < 2 &&
                  (n = read(hello[0], buf, sizeof buf)) > 0;) {
    text.append(buf, static_cast<size_t>(n));
  }
  close(hello[0]);
  const size_t nl = text.find('\n');
  if (std::count(text.begin(), text.end(), '\n') < 2) {
    kill(child, SIGKILL);
    waitpid(child, nullptr, 0);
    throw std::runtime_error("the coordinator child did not start");
  }
  const std::string endpoint = text.substr(0, nl);
  const std::string key = text.substr(nl + 1, text.find('\n', nl + 1) - nl - 1);

  std::mutex mu;
  std::vector<uint64_t> acked;
  std::atomic<int> count{0}, failed{0};
  std::atomic<int64_t> killed_at_ns{0};
  std::vector<std::thread> clients;
  const auto t0 = Clock::now();
  for (int c = 0; c < o.clients; ++c) {
    clients.emplace_back([&, c] {
      client::Client cl({.endpoint = endpoint,
                         .token = "bench-token",
                         .coordinator_key = key,
                         .timeout = std::chrono::seconds(5)});
      for (int i = c; i < 10 * kill_after + o.clients; i += o.clients) {  // bounded
        absl::StatusOr<uint64_t> id = cl.Submit(BenchSpec(i));
        if (!id.ok()) {
          ++failed;
          return;
        }
        {
          std::lock_guard<std::mutex> lock(mu);
          acked.push_back(*id);
        }
        if (++count == kill_after) {
          killed_at_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(
                             Clock::now() - t0).count();
          kill(child, SIGKILL);
        }
      }
    });
  }
  for (std::thread& t : clients) t.join();
  kill(child, SIGKILL);  // in case the stream ended first (it does not: the bound is 10x)
  waitpid(child, nullptr, 0);

  KilledResult r;
  r.acknowledged = static_cast<int>(acked.size());
  r.failed = failed;
  r.per_s = killed_at_ns > 0 ? kill_after / (killed_at_ns * 1e-9) : 0;
  auto store = coordinator::Store::Open(copts.state_dir + "/state.db");
  if (!store.ok()) throw std::runtime_error(std::string(store.status().message()));
  auto snap = (*store)->Load();
  if (!snap.ok()) throw std::runtime_error(std::string(snap.status().message()));
  std::set<uint64_t> stored;
  for (const auto& job : snap->jobs) stored.insert(job.id);
  r.stored = stored.size();
  for (uint64_t id : acked) r.missing += stored.count(id) ? 0 : 1;
  return r;
}

// A busy 1,000-node cluster and 10,000 queued gang jobs of mixed sizes.
struct Scenario {
  std::vector<coordinator::SchedNode> nodes;
  std::vector<coordinator::SchedRunning> running;
  std::vector<coordinator::SchedJob> jobs;
  std::vector<uint32_t> running_tenant;  // with quotas: the tenant of each running entry
};

// The fairness pass after a quota pass (fairness.h), over the state that
// pass left: each running entry is one job (a third younger than
// min_runtime), placed GPUs taken and counted to their tenants.
size_t FairnessPass(const Scenario& s, coordinator::SchedPolicy policy,
                    const coordinator::SchedResult& res, absl::Time now) {
  std::vector<coordinator::SchedNode> nodes = s.nodes;
  std::vector<coordinator::FairnessJob> live;
  for (size_t i = 0; i < s.running.size(); ++i) {
    coordinator::FairnessJob f;
    f.id = 1'000'000 + i;
    f.tenant = s.running_tenant[i];
    f.gpus = {{s.running[i].node, s.running[i].gpus}};
    f.eligible_at = i % 3 == 0 ? now + absl::Minutes(5) : now - absl::Minutes(5);
    f.work_since_checkpoint = static_cast<double>(i % 97);
    live.push_back(std::move(f));
  }
  std::map<uint64_t, const coordinator::SchedJob*> by_id;
  for (const coordinator::SchedJob& j : s.jobs) by_id[j.id] = &j;
  std::set<uint64_t> placed;
  for (const coordinator::Placement& p : res.placements) {
    placed.insert(p.job_id);
    for (size_t k = 0; k < p.nodes.size(); ++k) {
      std::vector<uint32_t>& free = nodes[p.nodes[k]].free_gpus;
      for (uint32_t g : p.gpus[k]) free.erase(std::find(free.begin(), free.end(), g));
      policy.tenants[by_id.at(p.job_id)->tenant].in_use += static_cast<uint32_t>(p.gpus[k].size());
    }
  }
  std::vector<coordinator::SchedJob> unplaced;
  for (const coordinator::SchedJob& j : s.jobs) {
    if (!placed.count(j.id)) unplaced.push_back(j);
  }
  coordinator::FairnessResult fair = coordinator::ChooseFairnessPreemptions(
      nodes, live, std::move(unplaced), std::move(policy.tenants), now);
  size_t victims = 0;
  for (const coordinator::FairnessPreemption& p : fair.preemptions) victims += p.victims.size();
  return victims;
}

Scenario MakeScenario(const SchedBenchOptions& o, absl::Time now) {
  std::mt19937_64 rng(o.seed);
  Scenario s;
  const uint32_t g = static_cast<uint32_t>(o.gpus_per_node);
  for (int i = 0; i < o.nodes; ++i) {
    coordinator::SchedNode n{fmt::format("node-{:04d}", i), g, {}, true};
    uint32_t busy = static_cast<uint32_t>(rng() % (g + 1));
    for (uint32_t k = busy; k < g; ++k) n.free_gpus.push_back(k);
    if (busy > 0) {
      s.running.push_back({static_cast<uint32_t>(i), busy,
                           rng() % 4 == 0 ? absl::InfiniteFuture()
                                          : now + absl::Minutes(10 + rng() % 600)});
    }
    s.nodes.push_back(std::move(n));
  }
  const uint32_t widths[] = {1, 1, 1, 2, 2, 4, 8, 16, 32, 64};
  const uint32_t per_node[] = {1, 2, 4, 8};
  for (int j = 0; j < o.pending_jobs; ++j) {
    coordinator::SchedJob job;
    job.id = static_cast<uint64_t>(j + 1);
    job.priority = static_cast<int>(rng() % 3);
    job.order = static_cast<uint64_t>(j);
    job.nodes = widths[rng() % std::size(widths)];
    job.gpus_per_node = std::min(g, per_node[rng() % std::size(per_node)]);
    job.time_limit = rng() % 3 == 0 ? absl::ZeroDuration() : absl::Minutes(5 + rng() % 720);
    s.jobs.push_back(std::move(job));
  }
  return s;
}

// --tenants tenants with quotas that sum to 80% of the pool, weights 1-3,
// every third with a borrow limit, the running GPUs (half of them on four
// borrowing tenants) and the queue spread over them at random, some usage
// history.
coordinator::SchedPolicy QuotaScenario(const SchedBenchOptions& o, Scenario& s) {
  std::mt19937_64 rng(o.seed + 1);
  coordinator::SchedPolicy policy;
  policy.quotas = true;
  const uint32_t pool = static_cast<uint32_t>(o.nodes * o.gpus_per_node);
  const uint32_t n = static_cast<uint32_t>(std::max(1, o.tenants));
  for (uint32_t t = 0; t < n; ++t) {
    coordinator::SchedTenant tenant;
    tenant.name = fmt::format("tenant-{:02d}", t);
    tenant.quota = pool * 8 / 10 / n;
    if (t % 3 == 0) tenant.borrow_limit = tenant.quota / 2;
    tenant.weight = 1.0 + static_cast<double>(rng() % 3);
    tenant.history = static_cast<double>(rng() % 100) / 1000.0;
    policy.tenants.push_back(std::move(tenant));
  }
  s.running_tenant.clear();
  for (const coordinator::SchedRunning& r : s.running) {
    // Half the running GPUs on the first four tenants, who borrow: the
    // fairness pass then has guarantees to give back.
    s.running_tenant.push_back(static_cast<uint32_t>(rng() % 2 == 0 ? rng() % std::min(n, 4u)
                                                                    : rng() % n));
    policy.tenants[s.running_tenant.back()].in_use += r.gpus;
  }
  for (coordinator::SchedJob& j : s.jobs) j.tenant = static_cast<uint32_t>(rng() % n);
  return policy;
}

// The pure pass, median of --repeats, without quotas and with them (the
// same nodes, running GPUs and queue), alternated.
std::vector<nlohmann::json> PurePasses(const SchedBenchOptions& o) {
  absl::Time now = absl::Now();
  Scenario s = MakeScenario(o, now);
  const coordinator::SchedPolicy policy = QuotaScenario(o, s);
  std::vector<double> plain_ms, quota_ms, fairness_ms;
  size_t placed = 0, placed_quota = 0, victims = 0;
  for (int r = 0; r < o.repeats; ++r) {
    auto t0 = Clock::now();
    coordinator::SchedResult res = coordinator::Schedule(s.nodes, s.running, s.jobs, now);
    plain_ms.push_back(Seconds(t0, Clock::now()) * 1e3);
    placed = res.placements.size();
    t0 = Clock::now();
    res = coordinator::Schedule(s.nodes, s.running, s.jobs, now, policy);
    quota_ms.push_back(Seconds(t0, Clock::now()) * 1e3);
    placed_quota = res.placements.size();
    t0 = Clock::now();
    victims = FairnessPass(s, policy, res, now);
    fairness_ms.push_back(Seconds(t0, Clock::now()) * 1e3);
  }
  std::vector<double> both_ms;
  for (size_t i = 0; i < quota_ms.size(); ++i) both_ms.push_back(quota_ms[i] + fairness_ms[i]);
  return {{{"op", "sched_pass"}, {"nodes", o.nodes}, {"pending_jobs", o.pending_jobs},
           {"placed", placed}, {"ours_ms", Median(plain_ms)}, {"target_ms", 50.0},
           {"what", "Schedule(): one pure pass, median of repeats"}},
          {{"op", "sched_pass_quotas"}, {"nodes", o.nodes}, {"pending_jobs", o.pending_jobs},
           {"tenants", policy.tenants.size()}, {"placed", placed_quota},
           {"ours_ms", Median(both_ms)}, {"quota_pass_ms", Median(quota_ms)},
           {"fairness_pass_ms", Median(fairness_ms)}, {"fairness_victims", victims},
           {"without_quotas_ms", Median(plain_ms)}, {"target_ms", 50.0},
           {"what", "the same pass with quotas (80% of the pool), weights, borrow limits and "
                    "history over --tenants tenants, then the fairness-preemption pass "
                    "(fairness.h) over what it left; ours_ms is both; alternated with the "
                    "pass without quotas"}}};
}

// The same pass inside the coordinator: snapshot of the cluster model, the
// pass, and every placement written to the store, then committed.
nlohmann::json ClusterPass(const SchedBenchOptions& o, const std::string& dir) {
  auto store = *coordinator::Store::Open(dir + "/cluster-pass.db");
  FakeClock clock(absl::Now());
  coordinator::Config config;
  config.storage_root = dir + "/storage";
  coordinator::Cluster cluster(*store, clock, config);
  (void)cluster.Recover();
  Scenario s = MakeScenario(o, clock.Now());
  (void)store->Begin();
  for (const coordinator::SchedNode& n : s.nodes) {
    protocols::WorkerReport r;
    r.node = n.name;
    r.incarnation = "bench";
    r.address = "127.0.0.1";
    for (uint32_t k = 0; k < n.total_gpus; ++k) r.gpus.push_back({k, "emulated", 0});
    (void)cluster.OnWorkerReport(r, n.name);
  }
  for (const coordinator::SchedJob& j : s.jobs) {
    protocols::JobSpec spec = BenchSpec(0);
    spec.nodes = j.nodes;
    spec.gpus_per_node = j.gpus_per_node;
    spec.priority = static_cast<protocols::Priority>(j.priority);
    spec.time_limit = j.time_limit;
    (void)cluster.Submit("bench", spec);
  }
  (void)store->Commit();
  auto t0 = Clock::now();
  (void)store->Begin();
  (void)cluster.Schedule();
  (void)store->Commit();
  double first_ms = Seconds(t0, Clock::now()) * 1e3;
  size_t running = 0;
  for (const auto& [id, job] : cluster.jobs()) running += job.state == coordinator::JobState::kRunning;
  t0 = Clock::now();
  (void)store->Begin();
  (void)cluster.Schedule();
  (void)store->Commit();
  double steady_ms = Seconds(t0, Clock::now()) * 1e3;
  return {{"op", "coordinator_pass"}, {"nodes", o.nodes}, {"pending_jobs", o.pending_jobs},
          {"placed", running}, {"ours_ms", first_ms}, {"steady_ms", steady_ms},
          {"target_ms", 50.0},
          {"what", "Cluster::Schedule() on an idle cluster incl. store writes + commit; "
                   "steady = next pass, nothing fits"}};
}

}  // namespace

Report RunSchedBench(const SchedBenchOptions& o, const std::string& command) {
  Report report;
  report.area = "sched";
  report.command = command;
  std::string dir = TempDir(o.dir, "sched");
  report.machine["fsync_per_s"] = FsyncRate(dir);
  report.machine["cores"] = std::thread::hardware_concurrency();

  // Acknowledged submissions/s, and durability: the coordinator is SIGKILLed
  // mid-stream once half of --submissions are acknowledged.
  KilledResult ours = DurableSubmissionsKilled(o, TempDir(dir, "killed"), o.submissions / 2);
  double peer = PerRequestCommitRate(dir, o.baseline_commits);
  report.rows.push_back({{"op", "durable_submit"}, {"clients", o.clients},
                         {"acknowledged", ours.acknowledged}, {"cut_off_by_sigkill", ours.failed},
                         {"stored_after_sigkill", ours.stored},
                         {"acknowledged_missing", ours.missing}, {"ours_per_s", ours.per_s},
                         {"peer", "sqlite_commit_per_request"}, {"peer_per_s", peer},
                         {"ratio", ours.per_s / peer}, {"target_per_s", 1000}});
  if (ours.missing > 0) {
    report.Print(false);
    throw std::runtime_error(fmt::format(
        "durable_submit: {} of {} acknowledged submissions are missing after the SIGKILL",
        ours.missing, ours.acknowledged));
  }
  // CURVE against plain TCP, alternated in fresh state dirs; the best round of each.
  double curve = 0, plain = 0;
  for (int round = 0; round < o.wire_rounds; ++round) {
    std::string a = TempDir(dir, "plain"), b = TempDir(dir, "curve");
    plain = std::max(plain, DurableSubmissions(o, a, /*plaintext=*/true));
    curve = std::max(curve, DurableSubmissions(o, b));
    std::filesystem::remove_all(a);
    std::filesystem::remove_all(b);
  }
  report.rows.push_back({{"op", "durable_submit_wire"}, {"clients", o.clients},
                         {"rounds", o.wire_rounds}, {"ours", "curve"}, {"ours_per_s", curve},
                         {"peer", "plaintext_tcp"}, {"peer_per_s", plain},
                         {"ratio", plain > 0 ? curve / plain : 0}, {"target_ratio", 0.8}});
  for (nlohmann::json& row : PurePasses(o)) report.rows.push_back(std::move(row));
  report.rows.push_back(ClusterPass(o, dir));
  std::filesystem::remove_all(dir);
  return report;
}

}  // namespace sublet::bench

namespace sublet::bench {

std::pair<CLI::App*, std::function<Report(const std::string&)>> AddSchedCommand(CLI::App& app) {
  auto o = std::make_shared<SchedBenchOptions>();
  CLI::App* s = app.add_subcommand(
      "sched",
      "Starts a coordinator in a child process on tcp://127.0.0.1 with a fresh SQLite store "
      "under --dir, has --clients threads (one ZeroMQ socket each) submit 2-node jobs and "
      "SIGKILLs the coordinator once half of --submissions are acknowledged, while the clients "
      "are still submitting; reports acknowledged submissions/s until then, reopens the store "
      "and fails (exit 1) when one acknowledged job is missing. Peer: the same rows written "
      "with one SQLite WAL commit (fsync) per request. "
      "Then --submissions submissions over CURVE (as deployed, coordinator in-process) against "
      "plain TCP, alternated --wire-rounds times. "
      "Then times one scheduling pass over --nodes nodes x --gpus-per-node GPUs (randomly half "
      "busy) and --pending-jobs queued gang jobs of mixed sizes: the pure pass (median of "
      "--repeats), the same pass with quotas and fair share over --tenants tenants, and the "
      "coordinator's pass including the store writes of its placements.");
  s->add_option("--clients", o->clients)->capture_default_str();
  s->add_option("--submissions", o->submissions)->capture_default_str();
  s->add_option("--baseline-commits", o->baseline_commits)->capture_default_str();
  s->add_option("--wire-rounds", o->wire_rounds,
                "rounds of the same submissions over CURVE and over plain TCP")
      ->capture_default_str();
  s->add_option("--nodes", o->nodes)->capture_default_str();
  s->add_option("--gpus-per-node", o->gpus_per_node)->capture_default_str();
  s->add_option("--pending-jobs", o->pending_jobs)->capture_default_str();
  s->add_option("--tenants", o->tenants, "tenants the quota pass spreads the queue over")
      ->capture_default_str();
  s->add_option("--repeats", o->repeats)->capture_default_str();
  s->add_option("--seed", o->seed)->capture_default_str();
  s->add_option("--dir", o->dir, "parent directory for state")->capture_default_str();
  return {s, [o](const std::string& command) { return RunSchedBench(*o, command); }};
}

}  // namespace sublet::bench

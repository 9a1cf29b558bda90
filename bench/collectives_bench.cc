// The launcher half of `sublet-bench collectives`: starts the ranks with
// mpirun (re-executing this binary), then turns rank 0's rows into a Report.
#include "bench/collectives_bench.h"

#include <stdlib.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <stdexcept>
#include <thread>

#include "fmt/format.h"
#include "fmt/ranges.h"

namespace sublet::bench {
namespace {

std::string SelfExe() {
  char buf[4096] = {};
  ssize_t n = readlink("/proc/self/exe", buf, sizeof(buf) - 1);
  if (n <= 0) throw std::runtime_error("cannot find /proc/self/exe");
  return std::string(buf, static_cast<size_t>(n));
}

// Open MPI's vader single-copy mechanism as the ranks get it (value, and
// where it came from: default, environment, file), from ompi_info.
std::pair<std::string, std::string> VaderSingleCopy() {
  std::string value = "unknown", source = "unknown";
  FILE* p = popen("ompi_info --param btl vader --level 9 --parsable 2>/dev/null", "r");
  if (!p) return {value, source};
  char line[512];
  const std::string key = "mca:btl:vader:param:btl_vader_single_copy_mechanism:";
  while (fgets(line, sizeof(line), p)) {
    std::string l(line);
    while (!l.empty() && (l.back() == '\n' || l.back() == '\r')) l.pop_back();
    if (l.rfind(key + "value:", 0) == 0) value = l.substr(key.size() + 6);
    if (l.rfind(key + "source:", 0) == 0) source = l.substr(key.size() + 7);
  }
  pclose(p);
  return {value, source};
}

}  // namespace

Report RunCollectivesBench(const CollectivesBenchOptions& options, const std::string& command) {
  if (!options.worker_output.empty()) {
    std::exit(RunCollectivesBenchRank(options));
  }
  char tmpl[] = "/tmp/sublet-bench-collectives-XXXXXX";
  int fd = mkstemp(tmpl);
  if (fd < 0) throw std::runtime_error("mkstemp failed");
  close(fd);
  const std::string out = tmpl;
  const unsigned cores = std::max(1u, std::thread::hardware_concurrency());
  const bool oversubscribed = static_cast<unsigned>(options.ranks) > cores;
  // Open MPI refuses root without these. The peer otherwise runs as Open MPI
  // ships: vader's single-copy mechanism (CMA where the kernel allows it) is
  // left as it is, and the report says which one is configured.
  setenv("OMPI_ALLOW_RUN_AS_ROOT", "1", 0);
  setenv("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1", 0);
  std::string cmd = fmt::format(
      "{} -np {} {} {} collectives --min-bytes {} --max-bytes {} --seconds-per-point {} "
      "--shm-slot-bytes {} --shm-spin-us {} --ops {} {} --worker-output {}",
      options.mpirun, options.ranks,
      oversubscribed ? "--oversubscribe --bind-to none" : "--bind-to core --map-by core",
      SelfExe(), options.min_bytes, options.max_bytes, options.seconds_per_point,
      options.shm_slot_bytes, options.shm_spin_us, fmt::join(options.ops, ","),
      options.internode ? "" : "--no-internode", out);
  int rc = std::system(cmd.c_str());
  std::ifstream in(out);
  nlohmann::json doc;
  if (rc != 0 || !(in >> doc)) {
    unlink(out.c_str());
    throw std::runtime_error("collectives bench ranks failed: " + cmd);
  }
  unlink(out.c_str());
  Report report;
  report.area = "collectives";
  report.command = command;
  report.machine = doc["machine"];
  const auto [mechanism, source] = VaderSingleCopy();
  report.machine["mpi_single_copy_mechanism"] = mechanism;
  report.machine["mpi_single_copy_mechanism_source"] = source;
  for (auto& row : doc["rows"]) report.rows.push_back(row);
  return report;
}

std::pair<CLI::App*, std::function<Report(const std::string&)>> AddCollectivesCommand(
    CLI::App& app) {
  auto o = std::make_shared<CollectivesBenchOptions>();
  CLI::App* s = app.add_subcommand(
      "collectives",
      "Re-runs this binary under `mpirun -np --ranks` (one rank per core, bound to cores) "
      "and, in that one job, times out-of-place f32 sum collectives for every power-of-two "
      "size from --min-bytes to --max-bytes (--ops picks which; per size, the implementations "
      "are timed interleaved: 5 rounds, each running every implementation in turn for about "
      "--seconds-per-point/5 (a timed warm-up call sets the iteration count), time = the "
      "slowest rank's, the median round reported): allreduce, reduce_scatter and allgather "
      "with our host backend (all ranks on one node: shared memory), Open MPI (MPI_Allreduce, "
      "MPI_Reduce_scatter_block, MPI_Allgather) and Gloo (gloo::allreduce, gloo::allgather "
      "over its TCP transport on loopback; no Gloo reduce_scatter); then allreduce_internode: "
      "each rank its own emulated node, so ours runs its TCP ring, against Gloo, and again with "
      "a job secret (as in a Sublet job: every store and mesh connection proves it first), with "
      "the setup time of each (slowest rank). Open MPI runs as shipped (its single-copy "
      "mechanism as configured; the report names it). Reports "
      "algbw (bytes/time) and busbw (nccl-tests factors: allreduce 2(p-1)/p, others (p-1)/p) "
      "in GB/s, ratios to each peer, and for shared-memory allreduce the memory-bandwidth "
      "bound: memcpy rate of all ranks copying at once (measured in this run, best of 3 "
      "trials) / (3p-1), since the in-place shared-memory allreduce moves (3p-1)*S bytes.");
  s->add_option("--ranks", o->ranks, "ranks (processes)")->capture_default_str();
  s->add_option("--min-bytes", o->min_bytes)->capture_default_str();
  s->add_option("--max-bytes", o->max_bytes)->capture_default_str();
  s->add_option("--seconds-per-point", o->seconds_per_point,
                "time per size and implementation")->capture_default_str();
  s->add_option("--shm-slot-bytes", o->shm_slot_bytes, "ours: shared-memory round size per rank")
      ->capture_default_str();
  s->add_option("--shm-spin-us", o->shm_spin_us, "ours: spin before sleeping on a futex")
      ->capture_default_str();
  s->add_flag("!--no-internode", o->internode, "skip the two-emulated-nodes TCP comparison");
  s->add_option("--ops", o->ops, "which single-node operations to time (comma-separated)")
      ->delimiter(',')
      ->check(CLI::IsMember({"allreduce", "reduce_scatter", "allgather"}))
      ->capture_default_str();
  s->add_option("--mpirun", o->mpirun, "the mpirun to launch ranks with")->capture_default_str();
  s->add_option("--worker-output", o->worker_output, "internal: set by the launcher")
      ->group("");
  return {s, [o](const std::string& command) { return RunCollectivesBench(*o, command); }};
}

}  // namespace sublet::bench

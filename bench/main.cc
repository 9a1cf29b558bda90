// sublet-bench: measures one area at a time against peers run side by side.
#include <iostream>

#include <CLI/CLI.hpp>

#include "bench/sched_bench.h"
#include "common/log.h"

int main(int argc, char** argv) {
  CLI::App app{"sublet-bench: Sublet's benchmarks. Each subcommand measures one area and prints "
               "our figure next to each peer's, measured in the same run, and their ratio."};
  app.require_subcommand(1);
  app.fallthrough();  // -o may follow the subcommand
  std::string output = "table";
  app.add_option("-o,--output", output, "table|json")->check(CLI::IsMember({"table", "json"}));

  sublet::bench::SchedBenchOptions sched;
  CLI::App* s = app.add_subcommand(
      "sched",
      "Starts a coordinator in-process on tcp://127.0.0.1 with a fresh SQLite store under --dir, "
      "has --clients threads (one ZeroMQ socket each) submit --submissions 2-node jobs in total "
      "and reports acknowledged submissions/s; reopens the store to check every acknowledged job "
      "is there. Peer: the same rows written with one SQLite WAL commit (fsync) per request. "
      "Then times one scheduling pass over --nodes nodes x --gpus-per-node GPUs (randomly half "
      "busy) and --pending-jobs queued gang jobs of mixed sizes: the pure pass (median of "
      "--repeats) and the coordinator's pass including the store writes of its placements.");
  s->add_option("--clients", sched.clients)->capture_default_str();
  s->add_option("--submissions", sched.submissions)->capture_default_str();
  s->add_option("--baseline-commits", sched.baseline_commits)->capture_default_str();
  s->add_option("--nodes", sched.nodes)->capture_default_str();
  s->add_option("--gpus-per-node", sched.gpus_per_node)->capture_default_str();
  s->add_option("--pending-jobs", sched.pending_jobs)->capture_default_str();
  s->add_option("--repeats", sched.repeats)->capture_default_str();
  s->add_option("--seed", sched.seed)->capture_default_str();
  s->add_option("--dir", sched.dir, "parent directory for state")->capture_default_str();

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    return rc == 0 ? 0 : 2;
  }
  sublet::InitLogging("bench", "warn");
  std::string command;
  for (int i = 0; i < argc; ++i) command += (i ? " " : "") + std::string(argv[i]);
  try {
    if (s->parsed()) sublet::bench::RunSchedBench(sched, command).Print(output == "json");
  } catch (const std::exception& e) {
    std::cerr << "sublet-bench: " << e.what() << "\n";
    return 1;
  }
  return 0;
}

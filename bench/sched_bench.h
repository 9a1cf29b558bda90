// `sublet-bench sched`: durable submissions per second from concurrent
// clients against a real coordinator, and the time of one scheduling pass over
// a large cluster.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <utility>

#include <CLI/CLI.hpp>

#include "bench/report.h"

namespace sublet::bench {

struct SchedBenchOptions {
  int clients = 8;               // concurrent client threads, one socket each
  int submissions = 4000;        // in total, spread over the clients
  int baseline_commits = 400;    // rows for the one-commit-per-request peer
  int wire_rounds = 3;           // CURVE vs plaintext rounds (best of each)
  int nodes = 1000;              // scheduling pass: cluster size
  int gpus_per_node = 8;
  int pending_jobs = 10000;      // scheduling pass: queue length
  int tenants = 20;              // quota pass: tenants the queue is spread over
  int repeats = 5;               // pure passes timed; the median is reported
  uint64_t seed = 1;
  std::string dir = "/tmp";      // where the state directories go (same disk as a real one)
};

Report RunSchedBench(const SchedBenchOptions& options, const std::string& command);

// Registers `sched` on `app`; returns the subcommand and how to run it.
std::pair<CLI::App*, std::function<Report(const std::string&)>> AddSchedCommand(CLI::App& app);

}  // namespace sublet::bench

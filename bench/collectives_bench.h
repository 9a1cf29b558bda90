// `sublet-bench collectives`: our host backend against Open MPI's collectives
// and Gloo, side by side in one mpirun job on this machine. See the --help
// text in collectives_bench.cc for exactly what runs.
#pragma once

#include <cstddef>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include <CLI/CLI.hpp>

#include "bench/report.h"

namespace sublet::bench {

struct CollectivesBenchOptions {
  int ranks = 2;                            // one per core
  size_t min_bytes = 8;
  size_t max_bytes = size_t{256} << 20;
  double seconds_per_point = 0.25;         // per size and implementation (3..2000 iterations)
  size_t shm_slot_bytes = size_t{1} << 20;  // ours: CommunicatorOptions::shm_slot_bytes
  int shm_spin_us = 500;                    // ours: CommunicatorOptions::shm_spin
  bool internode = true;                    // also two emulated nodes over TCP vs Gloo
  // Which of allreduce, reduce_scatter, allgather to time (all by default).
  std::vector<std::string> ops = {"allreduce", "reduce_scatter", "allgather"};
  std::string mpirun = "mpirun";
  std::string worker_output;                // internal: set on the ranks mpirun starts
};

Report RunCollectivesBench(const CollectivesBenchOptions& options, const std::string& command);

// The per-rank half, run under mpirun; rank 0 writes the rows to
// options.worker_output as JSON. Returns the process exit code.
int RunCollectivesBenchRank(const CollectivesBenchOptions& options);

std::pair<CLI::App*, std::function<Report(const std::string&)>> AddCollectivesCommand(
    CLI::App& app);

}  // namespace sublet::bench

// `sublet-bench train`: the host trainer's speed on one rank against an
// OpenBLAS sgemm rate, data parallelism's hidden communication over a shaped
// link between two emulated nodes, and a tensor-parallel layer's collective
// matmul against all-gather-then-GEMM (see train_bench.cc).
#pragma once

#include <functional>
#include <string>
#include <utility>

#include <CLI/CLI.hpp>

#include "bench/report.h"

namespace sublet::bench {

// Registers `train` on `app`; returns the subcommand and how to run it.
std::pair<CLI::App*, std::function<Report(const std::string&)>> AddTrainCommand(CLI::App& app);

// The rank half of the link measurements: run by `train` itself inside a
// namespace (hidden flag --rank-helper). Rank 0 prints one JSON line.
int RunTrainRankHelper(const std::string& mode, int64_t bytes, int64_t m_local, int64_t k,
                       int64_t n, int chunks, int repeats, int threads);

}  // namespace sublet::bench

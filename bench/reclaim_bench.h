// `sublet-bench reclaim`: time from a reclaim call to the node handed over,
// against the forced checkpoint's bytes over the filesystem's write
// bandwidth, measured in the same run (see reclaim_bench.cc).
#pragma once

#include <functional>
#include <string>
#include <utility>

#include <CLI/CLI.hpp>

#include "bench/report.h"

namespace sublet::bench {

// Registers `reclaim` on `app`; returns the subcommand and how to run it.
std::pair<CLI::App*, std::function<Report(const std::string&)>> AddReclaimCommand(CLI::App& app);

}  // namespace sublet::bench

// `sublet-bench launch`: the time from a worker receiving a placement to
// every rank of it running, confined (the job's sandbox plus each rank's
// privilege drop, fd closing and seccomp filter: worker/sandboxes.h) against
// plain fork/exec, measured side by side in the same run.
#pragma once

#include <functional>
#include <string>
#include <utility>

#include <CLI/CLI.hpp>

#include "bench/report.h"

namespace sublet::bench {

struct LaunchBenchOptions {
  int ranks = 8;        // one node, this many ranks
  int repeats = 20;     // jobs per variant; medians are reported
  std::string dir = "/tmp";
};

Report RunLaunchBench(const LaunchBenchOptions& options, const std::string& command);

std::pair<CLI::App*, std::function<Report(const std::string&)>> AddLaunchCommand(CLI::App& app);

}  // namespace sublet::bench

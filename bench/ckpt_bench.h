// `sublet-bench ckpt`: the checkpoint library against the raw disk it writes
// to, measured in the same run: synchronous save vs fsynced sequential
// write (with the same writeback), load vs sequential read, and sublet-train's
// step with an async save every step vs with a synchronous one, each against
// no checkpointing.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <utility>

#include <CLI/CLI.hpp>

#include "bench/report.h"

namespace sublet::bench {

struct CkptBenchOptions {
  uint64_t size_mib = 1024;  // model state (at least), split over --tensors tensors
  int tensors = 15;          // value, adam.m, adam.v of --tensors / 3 parameters
  int dp = 1;                // ranks are threads of this process
  int tp = 1;
  int repeats = 3;           // baseline and sync save alternate; medians reported
  std::string dir = "/tmp";  // parent of the scratch directory (the disk under test)
  bool drop_caches = true;   // drop the page cache before each timed read (needs root)
  // The async stall as sublet-train pays it, with its writer running: one
  // rank of --train-model, --checkpoint-every 1 against no checkpointing.
  bool train = true;
  std::string train_model = "medium";  // ~101M parameters, 1.2 GB of state
  int train_steps = 8;
  int train_batch = 4;
  int train_seq = 64;
  int train_rounds = 3;
};

Report RunCkptBench(const CkptBenchOptions& options, const std::string& command);

// Registers `ckpt` on `app`; returns the subcommand and how to run it.
std::pair<CLI::App*, std::function<Report(const std::string&)>> AddCkptCommand(CLI::App& app);

}  // namespace sublet::bench

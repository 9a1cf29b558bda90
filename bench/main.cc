// sublet-bench: measures one area at a time against peers run side by side.
// Each area lives in its own <area>_bench.cc and registers one subcommand.
#include <functional>
#include <iostream>
#include <vector>

#include <CLI/CLI.hpp>

#include "bench/ckpt_bench.h"
#include "bench/collectives_bench.h"
#include "bench/launch_bench.h"
#include "bench/reclaim_bench.h"
#include "bench/sched_bench.h"
#include "bench/train_bench.h"
#include "common/log.h"

int main(int argc, char** argv) {
  CLI::App app{"sublet-bench: Sublet's benchmarks. Each subcommand measures one area and prints "
               "our figure next to each peer's, measured in the same run, and their ratio."};
  app.require_subcommand(1);
  app.fallthrough();  // -o may follow the subcommand
  std::string output = "table";
  app.add_option("-o,--output", output, "table|json")->check(CLI::IsMember({"table", "json"}));

  // Each area adds its subcommand and returns what to run when it is chosen.
  using Runner = std::function<sublet::bench::Report(const std::string& command)>;
  std::vector<std::pair<CLI::App*, Runner>> areas;
  areas.push_back(sublet::bench::AddSchedCommand(app));
  areas.push_back(sublet::bench::AddCollectivesCommand(app));
  areas.push_back(sublet::bench::AddCkptCommand(app));
  areas.push_back(sublet::bench::AddReclaimCommand(app));
  areas.push_back(sublet::bench::AddTrainCommand(app));
  areas.push_back(sublet::bench::AddLaunchCommand(app));

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
    for (auto& [sub, run] : areas) {
      if (sub->parsed()) run(command).Print(output == "json");
    }
  } catch (const std::exception& e) {
    std::cerr << "sublet-bench: " << e.what() << "\n";
    return 1;
  }
  return 0;
}

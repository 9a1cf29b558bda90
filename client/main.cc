// `sublet`: the command line client of a Sublet cluster (see DESIGN.md).
#include <iostream>

#include "client/cli/cli.h"
#include "client/context.h"

int main(int argc, char** argv) {
  return sublet::client::cli::RunCli(argc, argv, sublet::client::ProcessEnv(), std::cout,
                                     std::cerr);
}

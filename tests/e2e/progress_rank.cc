// A stand-in for a training rank in end-to-end tests: reports STEPS steps of
// progress to its worker's control endpoint, then exits 0, or with "hang"
// stops reporting and blocks forever (a rank stuck in a collective).
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>

#include "worker/control_client.h"

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: progress_rank STEPS [hang]\n");
    return 2;
  }
  const int steps = std::atoi(argv[1]);
  const bool hang = argc > 2 && std::string(argv[2]) == "hang";
  zmq::context_t context;
  auto found = sublet::worker::ControlClient::FromEnvironment(context);
  if (!found.ok()) {
    std::fprintf(stderr, "progress_rank: %s\n", std::string(found.status().message()).c_str());
    return 2;
  }
  std::unique_ptr<sublet::worker::ControlClient> control = *std::move(found);
  if (!control) {
    std::fprintf(stderr, "progress_rank: not started by a worker (no SUBLET_CONTROL)\n");
    return 2;
  }
  for (int step = 1; step <= steps; ++step) {
    sublet::protocols::Progress p;
    p.step = step;
    p.loss = 10.0 / step;
    p.tokens_per_s = 1000;
    (void)control->ReportProgress(p);
    std::printf("step %d\n", step);
    std::fflush(stdout);
    std::this_thread::sleep_for(std::chrono::milliseconds(50));  // "training"
  }
  if (hang) {
    std::printf("waiting in allreduce forever\n");
    std::fflush(stdout);
    for (;;) pause();
  }
  return 0;
}

// A stand-in training rank for the reclaim end-to-end tests, obeying the
// DESIGN.md preemption contract without any real training:
//
//   reclaim_rank STEPS EVERY MODE [GATE]
//
// It resumes from SUBLET_CHECKPOINT_DIR/latest (rank 0 writes it), runs to
// STEPS with a 50 ms "step", "commits a checkpoint" every EVERY steps (rank 0
// writes `latest` atomically and reports checkpoint_step), and on a notice
// (SIGUSR1, SIGTERM or the worker's control message):
//   ack    checkpoints the current step, reports it, exits 75;
//   control like ack, but SIGUSR1 is ignored: only the control message counts;
//   ignore keeps going (SIGUSR1 ignored): the worker kills it at the deadline;
//   gate   touches GATE.noticed, waits until GATE exists, then acks.
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>

#include "worker/control_client.h"

namespace {

std::atomic<bool> g_notice{false};
void OnNotice(int) { g_notice.store(true); }

std::string Env(const char* name) {
  const char* v = std::getenv(name);
  return v ? v : "";
}

long ReadLatest(const std::string& dir) {
  std::ifstream in(dir + "/latest");
  long step = 0;
  in >> step;
  return in ? step : 0;
}

void WriteLatest(const std::string& dir, long step) {
  std::string tmp = dir + "/latest.tmp." + std::to_string(getpid());
  std::ofstream(tmp) << step << "\n";
  std::filesystem::rename(tmp, dir + "/latest");
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 4) {
    std::fprintf(stderr, "usage: reclaim_rank STEPS EVERY ack|control|ignore|gate [GATE]\n");
    return 2;
  }
  const long steps = std::atol(argv[1]);
  const long every = std::atol(argv[2]);
  const std::string mode = argv[3];
  const std::string gate = argc > 4 ? argv[4] : "";
  const std::string dir = Env("SUBLET_CHECKPOINT_DIR");
  const bool rank0 = Env("SUBLET_RANK") == "0";
  if (mode == "control") {
    signal(SIGUSR1, SIG_IGN);
  } else if (mode == "ignore") {
    signal(SIGUSR1, SIG_IGN);
    signal(SIGTERM, SIG_IGN);
  } else {
    signal(SIGUSR1, OnNotice);
    signal(SIGTERM, OnNotice);
  }
  zmq::context_t context;
  auto found = sublet::worker::ControlClient::FromEnvironment(context);
  if (!found.ok()) {
    std::fprintf(stderr, "reclaim_rank: %s\n", std::string(found.status().message()).c_str());
    return 2;
  }
  std::unique_ptr<sublet::worker::ControlClient> control = *std::move(found);
  long committed = ReadLatest(dir);
  std::printf("resumed from step %ld (world %s)\n", committed, Env("SUBLET_WORLD_SIZE").c_str());
  std::fflush(stdout);
  auto report = [&](long step) {
    if (!control) return;
    sublet::protocols::Progress p;
    p.step = step;
    p.loss = 10.0 / (step + 1);
    p.tokens_per_s = 1000;
    p.checkpoint_step = committed > 0 ? committed : -1;
    p.checkpoint_bytes = 1 << 20;
    p.checkpoint_persist_s = 0.01;
    (void)control->ReportProgress(p);
  };
  for (long step = committed + 1; step <= steps; ++step) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));  // "training"
    sublet::protocols::PreemptNotice notice;
    if (mode != "ignore" && control && control->PollNotice(&notice)) g_notice.store(true);
    if (g_notice.load()) {
      std::printf("notice at step %ld\n", step);
      std::fflush(stdout);
      if (!gate.empty()) {
        std::ofstream(gate + ".noticed." + Env("SUBLET_RANK")) << step;
        while (!std::filesystem::exists(gate)) {
          std::this_thread::sleep_for(std::chrono::milliseconds(20));  // the test opens it
        }
      }
      if (rank0) WriteLatest(dir, step);
      committed = step;
      report(step);
      std::printf("checkpointed step %ld for preemption\n", step);
      std::fflush(stdout);
      return 75;
    }
    if (step % every == 0) {
      if (rank0) WriteLatest(dir, step);
      committed = step;
    }
    report(step);
  }
  std::printf("done at step %ld\n", steps);
  return 0;
}

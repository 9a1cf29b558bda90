// sublet-train: a GPT-style trainer with data and tensor parallelism, run by
// researchers under mpirun and by tenants through the service (DESIGN
// "sublet-train contract"). main() parses flags, applies the service's
// defaults, builds the process groups and runs the loop (worker/runtime/).
// Exit codes: 0 done; kExitPreempted (common/exit_codes.h) checkpointed for
// preemption; 2 bad flags (the message names the flag); 1 anything else.
#include <malloc.h>

#include <csignal>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include <CLI/CLI.hpp>

#include "absl/strings/numbers.h"
#include "collectives/communicator.h"
#include "common/exit_codes.h"
#include "common/log.h"
#include "worker/runtime/preemption_notice.h"
#include "worker/runtime/process_groups.h"
#include "worker/runtime/progress.h"
#include "worker/runtime/trainer.h"
#include "worker/train/gemm.h"

namespace {

using sublet::worker::TrainerOptions;

constexpr int kExitBadFlags = 2;

struct Flags {
  TrainerOptions options;
  std::string model = "tiny";
  std::optional<int> tp;
  std::optional<std::string> checkpoint_dir;
  std::optional<int64_t> checkpoint_every;
  std::optional<int> keep;
  std::string log_json;
  std::string backend = "auto";
  std::string dp_schedule = "overlap";
  bool sync_checkpoint = false;
};

void DefineFlags(CLI::App& app, Flags& f) {
  TrainerOptions& o = f.options;
  app.add_option("--model", f.model, "preset: tiny (seconds on one core), small (~3.3M params) or medium (~101M params, "
                 "1.2 GB of state with AdamW's moments)")
      ->check(CLI::IsMember({"tiny", "small", "medium"}));
  app.add_option("--steps", o.steps, "optimizer steps in the whole run")->required();
  app.add_option("--seed", o.seed, "initialisation and data seed");
  app.add_option("--tp", f.tp, "tensor parallel size (default SUBLET_TENSOR_PARALLEL or 1); dp = world / tp");
  app.add_option("--global-batch", o.global_batch, "sequences per optimizer step, any topology");
  app.add_option("--seq-len", o.seq_len, "tokens per sequence");
  app.add_option("--micro-batch", o.micro_batch, "sequences per forward/backward (default: the rank's share)");
  app.add_option("--lr", o.lr, "peak learning rate");
  app.add_option("--data", o.data, "synthetic, or a text file (byte-level tokens)");
  app.add_option("--checkpoint-dir", f.checkpoint_dir, "default SUBLET_CHECKPOINT_DIR; resumes from the newest checkpoint there");
  app.add_option("--checkpoint-every", f.checkpoint_every, "steps between async saves (default SUBLET_CHECKPOINT_EVERY or 0: end and preemption only)");
  app.add_flag("--allow-run-change", o.allow_run_change,
               "resume even if the checkpoint's run had other --steps, --seq-len, --data or "
               "--global-batch (refused otherwise)");
  app.add_option("--keep", f.keep, "checkpoints kept (default SUBLET_CHECKPOINT_KEEP or 3; 0 keeps all)");
  app.add_option("--log-json", f.log_json, "rank 0 appends one JSON object per step and checkpoint event to PATH, or - for stdout; "
                 "a PATH with {rank} in it: every rank appends to its own file");
  app.add_option("--backend", f.backend, "collectives backend")->check(CLI::IsMember({"auto", "host", "mpi", "nccl"}));
  app.add_option("--dp-schedule", f.dp_schedule, "overlap: bucketed all-reduce during backward; serial: after it")
      ->check(CLI::IsMember({"overlap", "serial"}));
  app.add_flag("--sync-checkpoint", f.sync_checkpoint,
               "periodic saves block the step (default: async, double buffered: one spare "
               "copy of the state in memory, no copy in the step)");
  app.add_option("--tp-chunks", o.tp_chunks, "collective-matmul chunks (1: no overlap)")->check(CLI::Range(1, 64));
  app.add_option("--test-signal-at-step", o.signal_at_step, "test hook: rank 0 raises SIGUSR1 at this step")
      ->group("");
  app.add_option("--test-checkpoint-write-delay-ms", o.test_checkpoint_write_delay_ms,
                 "test hook: each checkpoint file waits this long before it is created")
      ->check(CLI::Range(0, 60000))
      ->group("");
}

// A flag's value from the service environment when the flag was not given.
template <typename T>
absl::Status FromEnv(std::optional<T>& value, const char* name, const char* flag) {
  const char* v = std::getenv(name);
  if (value || v == nullptr || *v == '\0') return absl::OkStatus();
  if constexpr (std::is_same_v<T, std::string>) {
    value = v;
  } else {
    T parsed;
    if (!absl::SimpleAtoi(v, &parsed)) {
      return absl::InvalidArgumentError(std::string(flag) + ": " + name + "=" + v + " is not an integer");
    }
    value = parsed;
  }
  return absl::OkStatus();
}

absl::Status ApplyDefaults(Flags& f) {
  SUBLET_RETURN_IF_ERROR(FromEnv(f.tp, "SUBLET_TENSOR_PARALLEL", "--tp"));
  SUBLET_RETURN_IF_ERROR(FromEnv(f.checkpoint_dir, "SUBLET_CHECKPOINT_DIR", "--checkpoint-dir"));
  SUBLET_RETURN_IF_ERROR(FromEnv(f.checkpoint_every, "SUBLET_CHECKPOINT_EVERY", "--checkpoint-every"));
  SUBLET_RETURN_IF_ERROR(FromEnv(f.keep, "SUBLET_CHECKPOINT_KEEP", "--keep"));
  TrainerOptions& o = f.options;
  SUBLET_ASSIGN_OR_RETURN(o.model, sublet::train::GptPreset(f.model));
  o.checkpoint_dir = f.checkpoint_dir.value_or("");
  o.checkpoint_every = f.checkpoint_every.value_or(0);
  o.keep = f.keep.value_or(3);
  o.overlap_dp = f.dp_schedule == "overlap";
  o.async_checkpoint = !f.sync_checkpoint;
  if (f.backend == "nccl") {
    return absl::InvalidArgumentError("--backend: nccl needs the CUDA model, which is not built yet");
  }
  return absl::OkStatus();
}

sublet::collectives::CommunicatorOptions CommOptions(const std::string& backend) {
  sublet::collectives::CommunicatorOptions c;
  // The model lives in host memory: auto means host, whatever devices exist.
  c.backend = backend == "mpi" ? sublet::collectives::BackendKind::kMpi
                               : sublet::collectives::BackendKind::kHost;
  int local = 1;
  for (const char* name : {"SUBLET_LOCAL_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_SIZE"}) {
    if (const char* v = std::getenv(name)) (void)absl::SimpleAtoi(v, &local);
  }
  // More ranks than cores: a spinning waiter steals the core its peer needs.
  if (local > static_cast<int>(std::thread::hardware_concurrency())) {
    c.shm_spin = absl::Microseconds(20);
  }
  return c;
}

// Rank 0's JSON lines, from the training and the checkpoint writer threads.
// An empty path writes nothing; "-" writes to stdout.
class JsonLog {
 public:
  explicit JsonLog(std::string path) : path_(std::move(path)) {
    if (!path_.empty() && path_ != "-") file_.open(path_, std::ios::app);
  }
  bool ok() const { return path_.empty() || path_ == "-" || file_.is_open(); }
  void Write(const std::string& line) {
    if (path_.empty()) return;
    std::lock_guard<std::mutex> lock(mu_);
    std::ostream& out = path_ == "-" ? std::cout : static_cast<std::ostream&>(file_);
    out << line << '\n';
    out.flush();
  }

 private:
  const std::string path_;
  std::mutex mu_;
  std::ofstream file_;
};

// --log-json for this rank: PATH with {rank} replaced on every rank, else
// PATH on rank 0 and nothing elsewhere.
std::string LogPathOfRank(const std::string& path, int rank) {
  const size_t at = path.find("{rank}");
  if (at == std::string::npos) return rank == 0 ? path : "";
  std::string mine = path;
  for (size_t i = at; i != std::string::npos; i = mine.find("{rank}", i)) {
    mine.replace(i, 6, std::to_string(rank));
  }
  return mine;
}

int Fail(int code, const absl::Status& s) {
  std::cerr << "sublet-train: " << s.message() << "\n";
  return code;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"sublet-train: a GPT-style trainer with data and tensor parallelism"};
  Flags flags;
  DefineFlags(app, flags);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : kExitBadFlags;
  }
  const char* level = std::getenv("SUBLET_LOG_LEVEL");
  sublet::InitLogging("train", level ? level : "info");
  // The layers allocate their activations and gradients afresh every step
  // (megabytes each): keep freed blocks in the heap instead of returning
  // them to the kernel, so a step does not pay page faults and zeroing of
  // fresh pages for memory it had a moment ago.
  mallopt(M_MMAP_THRESHOLD, 256 << 20);
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
  if (absl::Status s = ApplyDefaults(flags); !s.ok()) return Fail(kExitBadFlags, s);

  // Static: the handlers stay until the very end of the process (MPI's
  // finalize at exit included), so a late notice never kills a rank that has
  // already checkpointed with the default SIGTERM action.
  static sublet::worker::PreemptionNotice notice;
  if (absl::Status s = notice.InstallSignalHandlers(); !s.ok()) return Fail(1, s);
  auto groups = sublet::worker::CreateProcessGroups(
      [](const char* n) { return std::getenv(n); }, flags.tp.value_or(1), CommOptions(flags.backend));
  if (!groups.ok()) {
    return Fail(absl::IsInvalidArgument(groups.status()) ? kExitBadFlags : 1, groups.status());
  }
  if (absl::Status s = sublet::worker::ValidateTrainerOptions(flags.options, groups->size(),
                                                               groups->tp_size);
      !s.ok()) {
    return Fail(kExitBadFlags, s);
  }
  if (groups->size() > 1 && std::getenv("OPENBLAS_NUM_THREADS") == nullptr) {
    sublet::train::SetGemmThreads(1);  // ranks share the node's cores
  }
  JsonLog log(LogPathOfRank(flags.log_json, groups->rank()));
  if (!log.ok()) {
    return Fail(kExitBadFlags, absl::InvalidArgumentError("--log-json: cannot open " + flags.log_json));
  }
  sublet::worker::ProgressReporter progress;
  auto outcome = sublet::worker::RunTraining(
      flags.options, *groups, notice, &progress,
      [&](const std::string& line) { log.Write(line); });
  if (!outcome.ok()) {
    return Fail(absl::IsInvalidArgument(outcome.status()) ? kExitBadFlags : 1, outcome.status());
  }
  switch (*outcome) {
    case sublet::worker::TrainOutcome::kDone:
      return 0;
    case sublet::worker::TrainOutcome::kPreempted:
      return sublet::kExitPreempted;
    case sublet::worker::TrainOutcome::kStoppedUnsaved:
      // Not 75: nothing was checkpointed. The exit of a process that SIGTERM
      // ended, which is what the notice asked for.
      std::cerr << "sublet-train: stopped by a preemption notice; no --checkpoint-dir, so "
                   "nothing was saved\n";
      return sublet::ExitCodeForSignal(SIGTERM);
  }
  return 1;
}

// Worker: rank bookkeeping on top of RankTable and the ProcessLauncher. The
// event loop and sockets are in worker_loop.cc.
#include "worker/worker.h"

#include <signal.h>
#include <sys/random.h>

#include <cerrno>
#include <stdexcept>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <system_error>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/exit_codes.h"
#include "common/log.h"
#include "fmt/format.h"
#include "worker/inventory.h"
#include "worker/pid_file.h"

namespace sublet::worker {
namespace fs = std::filesystem;
namespace {

// The last non-empty line of a rank's log (from its final 4 KiB), at most 300
// bytes: usually the error that ended it, shown in the job's events.
std::string LastLine(const std::string& path) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) return "";
  const std::streamoff size = in.tellg();
  const std::streamoff from = std::max<std::streamoff>(0, size - 4096);
  in.seekg(from);
  std::string tail(static_cast<size_t>(size - from), '\0');
  in.read(tail.data(), static_cast<std::streamsize>(tail.size()));
  while (!tail.empty() && (tail.back() == '\n' || tail.back() == '\r' || tail.back() == ' ')) {
    tail.pop_back();
  }
  const size_t newline = tail.rfind('\n');
  std::string line = newline == std::string::npos ? tail : tail.substr(newline + 1);
  if (line.size() > 300) line = line.substr(0, 300) + "...";
  return line;
}

constexpr uint32_t kMaxLogReadBytes = 1 << 20;

// Job ids come from the network and name directories and pid files; the
// coordinator assigns them from 1 up, so 0 names no job.
absl::Status CheckJobId(uint64_t job_id) {
  if (job_id == 0) return absl::InvalidArgumentError("bad job id 0: ids start at 1");
  return absl::OkStatus();
}

}  // namespace

std::string NewIncarnation() {
  std::random_device device;
  const uint64_t value = (uint64_t{device()} << 32) ^ device();
  return fmt::format("{:016x}", value);
}

Worker::Worker(Options options, Clock& clock, ProcessLauncher& launcher, zmq::context_t& context)
    : options_(std::move(options)),
      clock_(clock),
      launcher_(launcher),
      context_(context),
      control_endpoint_("ipc://" + options_.work_dir + "/control.sock"),
      table_(NewIncarnation()),
      sandboxes_(options_.isolation, options_.node, options_.work_dir,
                 options_.work_dir + "/control.sock"),
      stop_grace_(options_.stop_grace) {}

Worker::~Worker() { CloseSockets(); }

absl::Status Worker::Prepare() {
  std::error_code error;
  for (const char* sub : {"jobs", "ranks"}) {
    fs::create_directories(fs::path(options_.work_dir) / sub, error);
    if (error) {
      return absl::InternalError(
          fmt::format("cannot create {}/{}: {}", options_.work_dir, sub, error.message()));
    }
  }
  KillLeftoverRanks((fs::path(options_.work_dir) / "ranks").string());
  if (const int removed = sandboxes_.RemoveLeftoverCgroups(); removed > 0) {
    Log(LogLevel::kInfo, "leftover_cgroups_removed", {{"count", removed}});
  }
  const std::string instance_file = options_.work_dir + "/instance";
  std::ifstream(instance_file) >> instance_;
  if (instance_.empty()) {
    instance_ = NewIncarnation();
    const std::string tmp = instance_file + ".tmp";
    std::ofstream(tmp) << instance_ << "\n";
    fs::rename(tmp, instance_file, error);
    if (error) {
      return absl::InternalError(
          fmt::format("cannot write {}: {}", instance_file, error.message()));
    }
  }
  return absl::OkStatus();
}

std::string Worker::AttemptDir(const RankKey& key) const {
  return fmt::format("{}/jobs/{}/attempt-{}", options_.work_dir, key.job_id, key.attempt);
}

std::string Worker::LogPath(const RankKey& key) const {
  return fmt::format("{}/rank-{}.log", AttemptDir(key), key.rank);
}

std::string Worker::PidPath(const RankKey& key) const {
  return fmt::format("{}/ranks/{}.{}.{}.pid", options_.work_dir, key.job_id, key.attempt,
                     key.rank);
}

void Worker::HandleSync(const protocols::WorkerSync& sync) {
  if (shutting_down_) {
    Log(LogLevel::kDebug, "sync_ignored", {{"reason", "shutting down"}});
    return;
  }
  std::optional<SyncPlan> plan = table_.ApplySync(sync);
  if (!plan) {
    Log(LogLevel::kDebug, "sync_ignored",
        {{"incarnation", sync.incarnation}, {"ours", table_.incarnation()}});
    return;
  }
  stop_grace_ = absl::Milliseconds(sync.stop_grace_ms);
  for (const RankKey& key : plan->stop) StopRank(key);
  std::map<std::pair<uint64_t, uint32_t>, std::vector<uint32_t>> attempt_gpus;
  for (const protocols::RankLaunch& launch : sync.desired) {
    std::vector<uint32_t>& gpus = attempt_gpus[{launch.key.job_id, launch.key.attempt}];
    gpus.insert(gpus.end(), launch.gpus.begin(), launch.gpus.end());
  }
  for (const protocols::RankLaunch& launch : plan->launch) {
    LaunchRank(launch, attempt_gpus[{launch.key.job_id, launch.key.attempt}]);
  }
  for (const protocols::PreemptNotice& notice : sync.notices) {
    const RankRecord* record =
        table_.RecordNotice(notice.key, absl::FromUnixMillis(notice.deadline_unix_ms));
    if (record != nullptr) DeliverNotice(*record, notice);
  }
  for (const RankKey& key : plan->forgotten) {
    Log(LogLevel::kDebug, "rank_forgotten",
        {{"job", key.job_id}, {"attempt", key.attempt}, {"rank", key.rank}});
  }
  CollectSandboxes();
}

void Worker::CollectSandboxes() {
  if (sandboxes_.size() == 0) return;
  const std::vector<RankRecord> live = table_.LiveRanks();
  for (const std::string& gone : sandboxes_.Collect([&live](uint64_t job, uint32_t attempt) {
         for (const RankRecord& r : live) {
           if (r.key.job_id == job && r.key.attempt == attempt) return true;
         }
         return false;
       })) {
    Log(LogLevel::kInfo, "sandbox_destroyed", {{"sandbox", gone}});
  }
}

void Worker::LaunchRank(const protocols::RankLaunch& launch,
                        const std::vector<uint32_t>& attempt_gpus) {
  const RankKey& key = launch.key;
  const std::string token = NewControlToken();
  absl::StatusOr<int> pid = StartRank(launch, attempt_gpus, token);
  if (!pid.ok()) {
    Log(LogLevel::kError, "rank_launch_failed",
        {{"job", key.job_id}, {"attempt", key.attempt}, {"rank", key.rank},
         {"error", pid.status().ToString()}});
    // A rank that cannot be confined never runs: it fails like one whose
    // set-up failed, and says why.
    table_.RecordLaunchFailure(key, sandboxes_.enabled() ? kExitCannotExecute
                                                         : kExitCommandNotFound);
    table_.RecordExitMessage(key, std::string(pid.status().message()));
    report_due_ = true;
    return;
  }
  table_.RecordLaunch(key, *pid, token);
  Log(LogLevel::kInfo, "rank_started",
      {{"job", key.job_id}, {"attempt", key.attempt}, {"rank", key.rank}, {"pid", *pid},
       {"gpus", absl::StrJoin(launch.gpus, ",")}});
}

// 128 bits from the kernel's CSPRNG, hex: what a rank shows to speak for
// itself on the control endpoint. Never from a seeded generator: a tenant who
// sees its own tokens must learn nothing of another's.
std::string Worker::NewControlToken() {
  uint64_t bits[2] = {0, 0};
  size_t got = 0;
  while (got < sizeof(bits)) {
    const ssize_t n = getrandom(reinterpret_cast<char*>(bits) + got, sizeof(bits) - got, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) throw std::runtime_error("getrandom failed: no control token can be made");
    got += static_cast<size_t>(n);
  }
  return fmt::format("{:016x}{:016x}", bits[0], bits[1]);
}

absl::StatusOr<int> Worker::StartRank(const protocols::RankLaunch& launch,
                                      const std::vector<uint32_t>& attempt_gpus,
                                      const std::string& control_token) {
  SUBLET_RETURN_IF_ERROR(CheckJobId(launch.key.job_id));
  const std::string dir = AttemptDir(launch.key);
  std::error_code error;
  fs::create_directories(dir, error);
  if (error) return absl::InternalError(fmt::format("cannot create {}: {}", dir, error.message()));
  LaunchSpec spec;
  spec.argv = launch.command;
  spec.working_dir = dir;
  spec.log_path = LogPath(launch.key);
  spec.pid_file = PidPath(launch.key);
  for (const protocols::KeyValue& entry : launch.env) spec.env.emplace_back(entry.key, entry.value);
  if (sandboxes_.enabled()) {
    // The sandbox makes the job's storage itself, race-free, as the tenant's.
    SUBLET_ASSIGN_OR_RETURN(const JobSandbox* sandbox, sandboxes_.For(launch, attempt_gpus));
    spec.sandbox = &sandbox->handle();
    spec.working_dir = sandboxes_.RankDir(launch.key);
    spec.env.emplace_back("HOME", spec.working_dir);
  } else {
    CreateCheckpointDir(launch);
  }
  spec.env.emplace_back("CUDA_VISIBLE_DEVICES", absl::StrJoin(launch.gpus, ","));
  spec.env.emplace_back("SUBLET_CONTROL", control_endpoint_);
  spec.env.emplace_back("SUBLET_CONTROL_TOKEN", control_token);
  return launcher_.Launch(spec);
}

// The job's checkpoint directory, on storage shared by all nodes, exists
// before the rank starts. A relative path is taken from the rank's working
// directory, as the rank will read it. A failure is the rank's to report
// when it saves, so the launch goes on.
void Worker::CreateCheckpointDir(const protocols::RankLaunch& launch) const {
  const std::string* named = nullptr;
  for (const protocols::KeyValue& entry : launch.env) {
    if (entry.key == "SUBLET_CHECKPOINT_DIR") named = &entry.value;  // the last one wins
  }
  if (named == nullptr || named->empty()) return;
  std::error_code error;
  fs::create_directories(fs::path(AttemptDir(launch.key)) / *named, error);
  if (error) {
    Log(LogLevel::kWarn, "checkpoint_dir_failed",
        {{"job", launch.key.job_id}, {"dir", *named}, {"error", error.message()}});
  }
}

void Worker::StopRank(const RankKey& key) {
  const RankRecord* record = table_.Find(key);
  if (record == nullptr || record->state != RankState::kRunning) return;
  absl::Status sent = launcher_.SignalGroup(record->pid, SIGTERM);
  if (!sent.ok() && !absl::IsNotFound(sent)) {
    Log(LogLevel::kWarn, "signal_failed", {{"job", key.job_id}, {"error", sent.ToString()}});
  }
  table_.RecordStopRequested(key, clock_.Now() + stop_grace_);
  Log(LogLevel::kInfo, "rank_stop_requested",
      {{"job", key.job_id}, {"attempt", key.attempt}, {"rank", key.rank},
       {"grace_ms", absl::ToInt64Milliseconds(stop_grace_)}});
}

// A preemption notice: SIGUSR1 to the rank process, and the same notice on
// the control endpoint for a rank that listens there. The rank keeps running
// (it checkpoints and exits kExitPreempted); FireDueKills ends it at the
// deadline.
void Worker::DeliverNotice(const RankRecord& record, const protocols::PreemptNotice& notice) {
  const int signal = notice.signal != 0 ? static_cast<int>(notice.signal) : SIGUSR1;
  absl::Status sent = absl::OkStatus();
  if (sandboxes_.enabled()) {
    // Every process of the attempt on this node: a launcher's children too.
    if (!sandboxes_.NotifyOnce(record.key, signal)) {
      sent = absl::AlreadyExistsError("the attempt's sandbox was notified already");
    }
  } else {
    sent = launcher_.Signal(record.pid, signal);
  }
  SendControl(record, notice);
  Log(LogLevel::kInfo, "rank_notified",
      {{"job", notice.key.job_id}, {"attempt", notice.key.attempt}, {"rank", notice.key.rank},
       {"reason", notice.reason},
       {"deadline_in_ms",
        notice.deadline_unix_ms - absl::ToUnixMillis(clock_.Now())},
       {"signal", signal}, {"signal_sent", sent.ok() ? "yes" : sent.ToString()}});
}

void Worker::FireDueKills() {
  for (const RankRecord& record : table_.TakeDueKills(clock_.Now())) {
    absl::Status sent = launcher_.SignalGroup(record.pid, SIGKILL);
    Log(LogLevel::kWarn, "rank_killed",
        {{"job", record.key.job_id}, {"attempt", record.key.attempt}, {"rank", record.key.rank},
         {"pid", record.pid}, {"signal_sent", sent.ok() ? "yes" : "no (already gone)"}});
  }
}

void Worker::HandleExits(const std::vector<ProcessExit>& exits) {
  for (const ProcessExit& exit : exits) {
    std::optional<RankKey> key = table_.RecordExit(exit.pid, exit.exit_code);
    if (!key) {
      Log(LogLevel::kDebug, "unknown_child_exited", {{"pid", exit.pid}});
      continue;
    }
    report_due_ = true;
    std::string last_words;
    if (exit.exit_code != 0) {
      last_words = LastLine(LogPath(*key));
      table_.RecordExitMessage(*key, last_words);
    }
    Log(exit.exit_code == 0 ? LogLevel::kInfo : LogLevel::kWarn, "rank_exited",
        {{"job", key->job_id}, {"attempt", key->attempt}, {"rank", key->rank},
         {"code", exit.exit_code}, {"last_line", last_words}});
  }
  CollectSandboxes();
}

void Worker::BeginShutdown() {
  if (shutting_down_) return;
  shutting_down_ = true;
  Log(LogLevel::kInfo, "worker_stopping",
      {{"ranks", table_.live_count()}, {"grace_ms", absl::ToInt64Milliseconds(stop_grace_)}});
  for (const RankRecord& record : table_.LiveRanks()) StopRank(record.key);
}

protocols::WorkerReport Worker::BuildReport() const {
  protocols::WorkerReport report;
  report.node = options_.node;
  report.incarnation = table_.incarnation();
  report.address = options_.address;
  report.instance = instance_;
  report.isolation = !sandboxes_.enabled() ? "none"
                     : sandboxes_.cgroups()  ? "sandbox"
                                             : "sandbox, no cgroup limits";
  report.gpus = options_.gpus;
  report.ranks = table_.Statuses();
  absl::StatusOr<std::vector<uint32_t>> ports =
      ProbeFreePorts(options_.address, options_.free_ports);
  if (ports.ok()) {
    report.free_ports = *std::move(ports);
  } else {
    Log(LogLevel::kWarn, "port_probe_failed", {{"error", ports.status().ToString()}});
  }
  return report;
}

absl::StatusOr<protocols::LogsReply> Worker::ReadRankLog(
    const protocols::ReadRankLogRequest& request) const {
  const RankKey& key = request.key;
  SUBLET_RETURN_IF_ERROR(CheckJobId(key.job_id));
  std::ifstream in(LogPath(key), std::ios::binary);
  if (!in) {
    return absl::NotFoundError(fmt::format("no log for job {} attempt {} rank {} on node {}",
                                           key.job_id, key.attempt, key.rank, options_.node));
  }
  in.seekg(0, std::ios::end);
  const uint64_t size = static_cast<uint64_t>(in.tellg());
  protocols::LogsReply reply;
  if (request.offset < size) {
    const uint64_t wanted = std::min<uint64_t>({std::min(request.max_bytes, kMaxLogReadBytes),
                                                size - request.offset});
    reply.data.resize(wanted);
    in.seekg(static_cast<std::streamoff>(request.offset));
    in.read(reply.data.data(), static_cast<std::streamsize>(wanted));
    reply.data.resize(static_cast<size_t>(in.gcount()));
  }
  reply.next_offset = request.offset + reply.data.size();
  reply.complete = !table_.IsLive(key) && reply.next_offset >= size;
  return reply;
}

}  // namespace sublet::worker

#include "worker/pid_file.h"

#include <algorithm>
#include <chrono>
#include <thread>

#include <signal.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <system_error>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/log.h"

namespace sublet::worker {
namespace fs = std::filesystem;

absl::StatusOr<uint64_t> ProcessStartTime(int pid) {
  std::ifstream in(absl::StrCat("/proc/", pid, "/stat"));
  std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (!in.good() && stat.empty()) return absl::NotFoundError(absl::StrCat("no process ", pid));
  // "pid (comm) state ppid ...": comm may hold spaces and parentheses, so the
  // fields are counted from the last ')'; field 3 (state) comes first there.
  const size_t paren = stat.rfind(')');
  if (paren == std::string::npos) return absl::DataLossError("unreadable /proc stat");
  std::vector<std::string> fields =
      absl::StrSplit(stat.substr(paren + 1), ' ', absl::SkipEmpty());
  constexpr size_t kStartTimeIndex = 22 - 3;
  uint64_t start_time = 0;
  if (fields.size() <= kStartTimeIndex || !absl::SimpleAtoi(fields[kStartTimeIndex], &start_time)) {
    return absl::DataLossError("unreadable /proc stat");
  }
  return start_time;
}

absl::Status WritePidFile(const std::string& path, int pid) {
  SUBLET_ASSIGN_OR_RETURN(uint64_t start_time, ProcessStartTime(pid));
  const std::string temp = path + ".tmp";
  {
    std::ofstream out(temp, std::ios::trunc);
    out << pid << ' ' << start_time << '\n';
    if (!out.flush()) return absl::InternalError(absl::StrCat("cannot write ", temp));
  }
  std::error_code error;
  fs::rename(temp, path, error);
  if (error) return absl::InternalError(absl::StrCat("cannot write ", path, ": ", error.message()));
  return absl::OkStatus();
}

absl::StatusOr<PidRecord> ReadPidFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat("no pid file ", path));
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::vector<std::string> fields =
      absl::StrSplit(absl::StripAsciiWhitespace(text), ' ', absl::SkipEmpty());
  PidRecord record;
  if (fields.size() != 2 || !absl::SimpleAtoi(fields[0], &record.pid) || record.pid <= 0 ||
      !absl::SimpleAtoi(fields[1], &record.start_time)) {
    return absl::DataLossError(absl::StrCat("malformed pid file ", path));
  }
  return record;
}

namespace {

// Whether any process that is not yet a zombie belongs to one of `groups`
// (field 5 of /proc/<pid>/stat; the state is field 3).
bool AnyAlive(const std::vector<int>& groups) {
  std::error_code error;
  for (const fs::directory_entry& entry : fs::directory_iterator("/proc", error)) {
    int pid = 0;
    if (!absl::SimpleAtoi(entry.path().filename().string(), &pid)) continue;  // not a process
    std::ifstream in(entry.path() / "stat");
    std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    const size_t close_paren = stat.rfind(')');
    if (close_paren == std::string::npos) continue;
    std::vector<std::string> fields =
        absl::StrSplit(stat.substr(close_paren + 2), ' ', absl::SkipEmpty());
    int pgrp = 0;
    if (fields.size() < 3 || !absl::SimpleAtoi(fields[2], &pgrp)) continue;
    if (fields[0] == "Z" || fields[0] == "X") continue;
    if (std::find(groups.begin(), groups.end(), pgrp) != groups.end()) return true;
  }
  return false;
}

}  // namespace

int KillLeftoverRanks(const std::string& ranks_dir) {
  std::error_code error;
  if (!fs::is_directory(ranks_dir, error)) return 0;
  int killed = 0;
  std::vector<int> groups;
  for (const fs::directory_entry& entry : fs::directory_iterator(ranks_dir, error)) {
    const std::string path = entry.path().string();
    absl::StatusOr<PidRecord> record = ReadPidFile(path);
    if (record.ok()) {
      absl::StatusOr<uint64_t> start_time = ProcessStartTime(record->pid);
      if (start_time.ok() && *start_time == record->start_time && kill(-record->pid, SIGKILL) == 0) {
        ++killed;
        groups.push_back(record->pid);
        Log(LogLevel::kWarn, "leftover_rank_killed",
            {{"pid", record->pid}, {"file", entry.path().filename().string()}});
      }
    } else {
      Log(LogLevel::kWarn, "pid_file_unreadable",
          {{"file", path}, {"error", std::string(record.status().message())}});
    }
    fs::remove(entry.path(), error);
  }
  // SIGKILL is asynchronous. Until the leftovers are really gone they still
  // hold their GPUs (and files and ports), so the worker must not register
  // and be given new ranks before then. Bounded: a process stuck in the
  // kernel (D state) must not keep the node down forever.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!groups.empty() && AnyAlive(groups)) {
    if (std::chrono::steady_clock::now() > deadline) {
      Log(LogLevel::kError, "leftover_ranks_survive_sigkill", {{"groups", groups.size()}});
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return killed;
}

}  // namespace sublet::worker

#include "worker/pid_file.h"

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

int KillLeftoverRanks(const std::string& ranks_dir) {
  std::error_code error;
  if (!fs::is_directory(ranks_dir, error)) return 0;
  int killed = 0;
  for (const fs::directory_entry& entry : fs::directory_iterator(ranks_dir, error)) {
    const std::string path = entry.path().string();
    absl::StatusOr<PidRecord> record = ReadPidFile(path);
    if (record.ok()) {
      absl::StatusOr<uint64_t> start_time = ProcessStartTime(record->pid);
      if (start_time.ok() && *start_time == record->start_time && kill(-record->pid, SIGKILL) == 0) {
        ++killed;
        Log(LogLevel::kWarn, "leftover_rank_killed",
            {{"pid", record->pid}, {"file", entry.path().filename().string()}});
      }
    } else {
      Log(LogLevel::kWarn, "pid_file_unreadable",
          {{"file", path}, {"error", std::string(record.status().message())}});
    }
    fs::remove(entry.path(), error);
  }
  return killed;
}

}  // namespace sublet::worker

// Pid files of running ranks, DIR/ranks/<job>.<attempt>.<rank>.pid, holding
// "<pid> <start time>\n" (the start time is field 22 of /proc/<pid>/stat, in
// clock ticks since boot). Together the two identify one process even after
// its pid was reused, so a restarted worker can find and kill the ranks its
// previous incarnation left behind without touching an unrelated process.
#pragma once

#include <cstdint>
#include <string>

#include "common/status.h"

namespace sublet::worker {

struct PidRecord {
  int pid = 0;
  uint64_t start_time = 0;
};

// Field 22 of /proc/<pid>/stat. NotFound when the process does not exist.
absl::StatusOr<uint64_t> ProcessStartTime(int pid);

// Writes `path` for the live process `pid` (temporary file, then rename).
absl::Status WritePidFile(const std::string& path, int pid);

// Errors: NotFound (no file), DataLoss (not "<pid> <start time>").
absl::StatusOr<PidRecord> ReadPidFile(const std::string& path);

// Startup reconciliation: for every pid file in `ranks_dir`, SIGKILLs the
// process group of the recorded process if that process still exists with
// the recorded start time (logging `leftover_rank_killed`), and deletes the
// file either way. Returns how many groups were killed. A missing directory
// holds no leftovers.
int KillLeftoverRanks(const std::string& ranks_dir);

}  // namespace sublet::worker

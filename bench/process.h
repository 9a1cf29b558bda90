// What the benches that run Sublet's binaries share: where they are, starting
// one with a clean environment, waiting for it with a limit, and reading the
// per-iteration times sublet-train logs (--log-json).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace sublet::bench {

using Env = std::vector<std::pair<std::string, std::string>>;

std::string SelfExe();  // this sublet-bench
std::string BinDir();   // the directory of the other binaries

// Starts argv with `env` on top of ours (SUBLET_* rank variables and OMPI_*
// ranks removed), its stdout to `out`; the caller waits with WaitAll.
pid_t Spawn(const std::vector<std::string>& argv, const Env& env, const std::string& out);

// Waits for every pid; kills all of them past `limit`. Throws unless all exit 0.
void WaitAll(const std::vector<pid_t>& pids, std::chrono::seconds limit, const std::string& what);

std::string ReadAll(const std::string& path);

// Seconds to write `bytes` of `block` (repeated) to a new file at `path`
// with the writeback Sublet's checkpoint files get (checkpoint/fs.h: writes
// of kWritebackBytes, each followed by sync_file_range of what it wrote),
// then fdatasync; the file is removed after unless `keep`. The write-bandwidth
// baseline of the checkpoint and reclaim benches.
double FsyncedWriteSeconds(const std::string& path, uint64_t bytes, bool keep = false);

// The whole-iteration seconds of a sublet-train --log-json log: differences
// of consecutive step lines' elapsed_s (the agreement, the step and the
// previous step's save included), the first `skip` dropped. Throws when
// fewer than 2 remain.
std::vector<double> IterationSeconds(const std::string& log, int skip);

}  // namespace sublet::bench

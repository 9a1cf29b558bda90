// What the worker asks a ProcessLauncher to start: the data shared by the
// launcher (worker/process_launcher.h) and the rank's confinement
// (worker/confinement.h).
#pragma once

#include <string>
#include <utility>
#include <vector>

namespace sublet::worker {

struct SandboxHandle;  // worker/job_sandbox.h

struct LaunchSpec {
  std::vector<std::string> argv;  // argv[0] is looked up on PATH (execvp)
  // Overlaid on the launcher's own environment; later entries win.
  std::vector<std::pair<std::string, std::string>> env;
  std::string working_dir;  // must exist
  std::string log_path;     // stdout and stderr, opened for append (created)
  std::string pid_file;     // "" for none; removed when the process is reaped
  // The job's sandbox on this node, which a SandboxConfinement puts the rank
  // in (worker/confinement.h); not owned. nullptr: not sandboxed.
  const SandboxHandle* sandbox = nullptr;
};

}  // namespace sublet::worker

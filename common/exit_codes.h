// Process exit codes with a meaning across Sublet (DESIGN.md "Preemption and
// exit codes"): what a rank's exit says to the worker and the coordinator, and
// what the launcher and sublet-train exit with. One place, so the coordinator,
// the worker and sublet-train cannot drift apart.
#pragma once

#include <cstdint>

namespace sublet {

// The rank checkpointed for a preemption notice: requeue, never counted
// against max_restarts.
inline constexpr int32_t kExitPreempted = 75;
// The launcher could not set the rank up (a confinement or process step
// failed) or the command is not executable (shell convention).
inline constexpr int32_t kExitCannotExecute = 126;
// The command was not found (shell convention).
inline constexpr int32_t kExitCommandNotFound = 127;
// A process killed by signal N exits with kExitSignalBase + N.
inline constexpr int32_t kExitSignalBase = 128;
// Recorded by the coordinator, never by a process: the rank's node was lost
// or its worker restarted under it.
inline constexpr int32_t kExitNodeLost = -1;

constexpr int32_t ExitCodeForSignal(int signal) { return kExitSignalBase + signal; }
// The signal behind an exit code, or 0 when it is not "killed by a signal".
constexpr int ExitSignal(int32_t code) {
  return code > kExitSignalBase && code < kExitSignalBase + 65 ? code - kExitSignalBase : 0;
}

}  // namespace sublet

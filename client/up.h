// `sublet up`: a whole local cluster in the foreground, for trying Sublet and
// for the demo. It
//   1. writes DIR/coordinator.yaml (one tenant "dev", or with --tenants one
//      per name with a random token; one admin; the worker token; mode
//      0600) and DIR/node-token (0600, read by the workers with
//      --token-file, so no token is on a command line), and starts
//      sublet-coordinator and N sublet-worker daemons from
//      the directory `sublet` itself lives in, each logging to DIR/<name>.log;
//   2. waits until all N nodes report `ready` (a child that dies first fails
//      the command with the tail of its log);
//   3. writes the context file so later `sublet` commands find the cluster
//      (unless a context file for another coordinator exists);
//   4. runs until SIGINT/SIGTERM or a child dies, then SIGTERMs the children,
//      SIGKILLs what is left after the grace period, and removes the context
//      file it wrote.
#pragma once

#include <chrono>
#include <iosfwd>
#include <string>
#include <vector>

#include "common/status.h"

namespace sublet::client {

struct UpOptions {
  int workers = 2;  // sublet-worker daemons (node-1 ... node-N)
  int gpus = 2;     // emulated GPUs per worker
  std::string listen = "tcp://127.0.0.1:7700";
  std::string state_dir;                   // empty: a fresh mkdtemp under /tmp
  std::string bin_dir;                     // empty: the directory of /proc/self/exe
  std::string context_path;                // empty: write no context file
  std::chrono::seconds ready_timeout{60};  // for all nodes to become ready
  std::chrono::seconds stop_grace{15};     // SIGTERM -> SIGKILL
  bool json = false;                       // print the ready banner as JSON
  // Workers sandbox ranks (sublet-worker, worker/sandboxes.h) when run as
  // root, unless this is set; not as root they cannot and run with
  // --no-isolation.
  bool no_isolation = false;
  // Tenant names (--tenants acme,globex), each given a random token; empty:
  // the one tenant "dev" with token dev-token.
  std::vector<std::string> tenants;
};

struct UpTenant {
  std::string name;
  std::string token;
  bool operator==(const UpTenant&) const = default;
};

// The tenants `sublet up` configures: "dev" (token dev-token) when `names` is
// empty, else one per name, in order, each with a random 128-bit token (32
// hex digits). InvalidArgument naming --tenants for an empty or repeated
// name, or one that is not ASCII letters, digits and `._-` (at most 64 bytes,
// not starting with `.`): a tenant's name is a directory of the storage.
absl::StatusOr<std::vector<UpTenant>> MakeUpTenants(const std::vector<std::string>& names);

// The coordinator config `sublet up` runs with: its tenants, an admin, and
// the public keys of the nodes it starts (only they may register).
std::string RenderUpCoordinatorConfig(const std::string& state_dir,
                                      const std::vector<UpTenant>& tenants,
                                      const std::vector<std::string>& node_keys);

// Runs the cluster until it is stopped. OK after SIGINT/SIGTERM;
// InvalidArgument for bad options; FailedPrecondition when the daemons'
// binaries are missing; Internal when a daemon died (with its log tail);
// DeadlineExceeded when the nodes never became ready.
absl::Status RunUp(const UpOptions& options, std::ostream& out, std::ostream& err);

}  // namespace sublet::client

#include "collectives/bootstrap.h"

#include <unistd.h>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "collectives/host/host_backend.h"
#include "collectives/internal/socket.h"
#include "common/status.h"

namespace sublet::collectives {
namespace {

absl::StatusOr<int> IntVar(const GetenvFn& getenv, const char* name) {
  const char* v = getenv(name);
  int out;
  if (v == nullptr || !absl::SimpleAtoi(v, &out) || out < 0) {
    return absl::InvalidArgumentError(absl::StrCat(name, " is ", v ? v : "unset",
                                                   "; expected a non-negative integer"));
  }
  return out;
}

std::string HostName() {
  char buf[256] = {};
  gethostname(buf, sizeof(buf) - 1);
  return buf;
}

}  // namespace

absl::StatusOr<RankInfo> RankInfoFromEnv(const GetenvFn& getenv) {
  RankInfo info;
  if (getenv("SUBLET_RANK") != nullptr) {
    SUBLET_ASSIGN_OR_RETURN(info.rank, IntVar(getenv, "SUBLET_RANK"));
    SUBLET_ASSIGN_OR_RETURN(info.size, IntVar(getenv, "SUBLET_WORLD_SIZE"));
  } else if (getenv("OMPI_COMM_WORLD_RANK") != nullptr) {
    SUBLET_ASSIGN_OR_RETURN(info.rank, IntVar(getenv, "OMPI_COMM_WORLD_RANK"));
    SUBLET_ASSIGN_OR_RETURN(info.size, IntVar(getenv, "OMPI_COMM_WORLD_SIZE"));
    info.under_mpi = true;
  } else {
    return absl::FailedPreconditionError(
        "no rank environment: set SUBLET_RANK, SUBLET_WORLD_SIZE, SUBLET_RENDEZVOUS (the Sublet "
        "worker does) or run under mpirun");
  }
  if (info.size < 1 || info.rank >= info.size) {
    return absl::InvalidArgumentError(absl::StrCat("rank ", info.rank, " of world size ", info.size));
  }
  const char* node = getenv("SUBLET_NODE_NAME");
  info.node = node && *node ? node : HostName();
  if (const char* rv = getenv("SUBLET_RENDEZVOUS")) info.rendezvous = rv;
  if (info.rendezvous.empty() && !info.under_mpi) {
    return absl::InvalidArgumentError("SUBLET_RENDEZVOUS is unset; expected host:port");
  }
  return info;
}

absl::StatusOr<std::unique_ptr<Communicator>> CreateHostCommunicator(
    std::shared_ptr<Store> store, int rank, int size, const std::string& node,
    const CommunicatorOptions& options) {
  host::HostGroup group{std::make_shared<PrefixStore>(std::move(store), "world"), rank, size, node};
  SUBLET_ASSIGN_OR_RETURN(auto backend, host::CreateHostBackend(std::move(group), options,
                                                                absl::Now() + options.timeout));
  return std::make_unique<Communicator>(std::move(backend), options);
}

}  // namespace sublet::collectives

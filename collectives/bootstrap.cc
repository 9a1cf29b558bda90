#include "collectives/bootstrap.h"

#include <unistd.h>

#include <algorithm>

#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "collectives/host/host_backend.h"
#include "collectives/internal/peer_auth.h"
#include "collectives/internal/socket.h"
#include "collectives/mpi/mpi_backend.h"
#include "collectives/nccl/nccl_backend.h"
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

// SUBLET_JOB_SECRET: unset or empty (no secret), or 64 lowercase hex digits.
// The value never goes into the error.
absl::StatusOr<std::string> JobSecret(const GetenvFn& getenv) {
  const char* v = getenv("SUBLET_JOB_SECRET");
  if (v == nullptr || *v == '\0') return std::string();
  const std::string_view hex(v);
  const bool well_formed =
      hex.size() == 2 * internal::kSecretBytes && std::all_of(hex.begin(), hex.end(), [](char c) {
        return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
      });
  if (!well_formed) {
    return absl::InvalidArgumentError(
        absl::StrCat("SUBLET_JOB_SECRET is malformed (", hex.size(), " characters); expected ",
                     2 * internal::kSecretBytes, " lowercase hex digits"));
  }
  return absl::HexStringToBytes(absl::string_view(hex.data(), hex.size()));
}

std::string HostName() {
  char buf[256] = {};
  gethostname(buf, sizeof(buf) - 1);
  return buf;
}

}  // namespace

// The address other hosts reach this one at: the host name if it resolves,
// else loopback (a single-host run).
std::string HostNameForPeers() {
  std::string h = HostName();
  return h.empty() ? "127.0.0.1" : h;
}

namespace {

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
  SUBLET_ASSIGN_OR_RETURN(info.secret, JobSecret(getenv));
  return info;
}

absl::StatusOr<std::unique_ptr<Communicator>> CreateHostCommunicator(
    std::shared_ptr<Store> store, int rank, int size, const std::string& node,
    const CommunicatorOptions& options, std::string_view secret) {
  host::HostGroup group{std::make_shared<PrefixStore>(std::move(store), "world"), rank, size, node,
                        std::string(secret)};
  SUBLET_ASSIGN_OR_RETURN(auto backend, host::CreateHostBackend(std::move(group), options,
                                                                absl::Now() + options.timeout));
  return std::make_unique<Communicator>(std::move(backend), options);
}

}  // namespace sublet::collectives

namespace sublet::collectives {
namespace {

// Rank 0 serves the store; everyone (rank 0 included) connects to it.
absl::StatusOr<std::shared_ptr<Store>> ConnectStore(const RankInfo& info, absl::Time deadline,
                                                    absl::Duration linger) {
  std::string address = info.rendezvous;
  std::shared_ptr<TcpStoreServer> server;
  if (address.empty()) {  // under mpirun: rank 0 picks a port and tells the others
    std::string mine;
    if (info.rank == 0) {
      SUBLET_ASSIGN_OR_RETURN(server, TcpStoreServer::Start("0.0.0.0", 0, {}, info.secret));
      mine = absl::StrCat(HostNameForPeers(), ":", server->port());
    }
    SUBLET_ASSIGN_OR_RETURN(address, mpi::BroadcastFromRankZero(mine));
  }
  std::string host;
  int port = 0;
  SUBLET_RETURN_IF_ERROR(internal::ParseHostPort(address, &host, &port));
  if (info.rank == 0 && !server) {
    SUBLET_ASSIGN_OR_RETURN(server, TcpStoreServer::Start("0.0.0.0", port, {}, info.secret));
  }
  SUBLET_ASSIGN_OR_RETURN(auto store,
                          TcpStore::Connect(host, port, deadline, server, linger, info.secret));
  return std::shared_ptr<Store>(std::move(store));
}

}  // namespace

absl::StatusOr<std::unique_ptr<Communicator>> CreateCommunicator(
    const RankInfo& info, const CommunicatorOptions& options) {
  const absl::Time deadline = absl::Now() + options.timeout;
  BackendKind kind = options.backend;
  if (kind == BackendKind::kAuto) {
    auto devices = nccl::CudaDeviceCount();
    kind = devices.ok() && *devices > 0 ? BackendKind::kNccl : BackendKind::kHost;
  }
  if (kind == BackendKind::kMpi) {
    if (!info.under_mpi) {
      return absl::FailedPreconditionError("mpi backend: not running under mpirun");
    }
    SUBLET_ASSIGN_OR_RETURN(auto backend, mpi::CreateMpiBackend());
    return std::make_unique<Communicator>(std::move(backend), options);
  }
  if (kind == BackendKind::kNccl) {
    SUBLET_RETURN_IF_ERROR(nccl::CudaDeviceCount().status());
  }
  SUBLET_ASSIGN_OR_RETURN(std::shared_ptr<Store> store,
                          ConnectStore(info, deadline, std::min(options.timeout, absl::Seconds(30))));
  if (kind == BackendKind::kNccl) {
    SUBLET_ASSIGN_OR_RETURN(
        auto backend, nccl::CreateNcclBackend(std::make_shared<PrefixStore>(store, "nccl"),
                                              info.rank, info.size, options, deadline));
    return std::make_unique<Communicator>(std::move(backend), options);
  }
  return CreateHostCommunicator(std::move(store), info.rank, info.size, info.node, options,
                                info.secret);
}

}  // namespace sublet::collectives

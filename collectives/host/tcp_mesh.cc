#include "collectives/host/tcp_mesh.h"

#include "absl/strings/str_cat.h"
#include "common/status.h"

namespace sublet::collectives::host {

std::string TcpMesh::Peer(const char* op, int peer) {
  return absl::StrCat(op, ": rank ", peer, " (tcp)");
}

absl::StatusOr<std::unique_ptr<TcpMesh>> TcpMesh::Connect(Store& store, int rank, int size,
                                                          absl::Time deadline) {
  std::string ip = store.LocalAddress();
  int port = 0;
  SUBLET_ASSIGN_OR_RETURN(internal::Fd listener, internal::Listen(ip, 0, &port));
  SUBLET_ASSIGN_OR_RETURN(
      std::vector<std::string> addrs,
      AllGatherViaStore(store, "mesh", rank, size, absl::StrCat(ip, ":", port), deadline));
  std::vector<internal::Fd> fds(size);
  for (int j = rank + 1; j < size; ++j) {
    std::string host;
    int peer_port;
    SUBLET_RETURN_IF_ERROR(internal::ParseHostPort(addrs[j], &host, &peer_port));
    std::string what = Peer("connect", j);
    SUBLET_ASSIGN_OR_RETURN(fds[j], internal::Connect(host, peer_port, deadline, what));
    int32_t me = rank;
    SUBLET_RETURN_IF_ERROR(internal::WriteFull(fds[j].get(), &me, 4, deadline, what));
  }
  for (int k = 0; k < rank; ++k) {
    SUBLET_ASSIGN_OR_RETURN(
        internal::Fd conn,
        internal::Accept(listener.get(), deadline,
                         absl::StrCat("connect: waiting for lower ranks to connect to rank ", rank)));
    int32_t who = -1;
    SUBLET_RETURN_IF_ERROR(internal::ReadFull(conn.get(), &who, 4, deadline, "connect: hello"));
    if (who < 0 || who >= rank || fds[who].valid()) {
      return absl::DataLossError(absl::StrCat("connect: unexpected hello from rank ", who));
    }
    fds[who] = std::move(conn);
  }
  return std::unique_ptr<TcpMesh>(new TcpMesh(rank, std::move(fds)));
}

}  // namespace sublet::collectives::host

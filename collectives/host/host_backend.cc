#include "collectives/host/host_backend.h"

#include <algorithm>
#include <cstring>
#include <map>
#include <tuple>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "collectives/host/algorithms.h"
#include "collectives/internal/numeric.h"
#include "collectives/internal/reduce.h"
#include "common/status.h"

namespace sublet::collectives::host {
namespace {

using internal::Backend;

class HostBackend final : public Backend {
 public:
  HostBackend(HostGroup group, CommunicatorOptions options, std::unique_ptr<TcpMesh> mesh,
              std::unique_ptr<ShmSegment> shm)
      : group_(std::move(group)), options_(std::move(options)), mesh_(std::move(mesh)),
        shm_(std::move(shm)) {}

  // Several nodes with L > 1 ranks each: the node's group (shared memory)
  // and the group of ranks with my local index on every node (TCP).
  void SetHierarchy(std::unique_ptr<Backend> local, std::unique_ptr<Backend> cross) {
    local_ = std::move(local);
    cross_ = std::move(cross);
  }

  int rank() const override { return group_.rank; }
  int size() const override { return group_.size; }
  std::string name() const override {
    return shm_ ? "host(shm)" : local_ ? "host(shm+tcp)" : "host(tcp)";
  }

  absl::Status AllReduce(const OpContext& ctx, const void* in, void* out, size_t count,
                         DataType type, ReduceOp op) override {
    if (size() == 1 || count == 0) return Copy(in, out, count * DataTypeSize(type));
    if (shm_) return ShmAllReduce(*shm_, ctx, in, out, count, type, op);
    if (local_) return HierarchicalAllReduce(ctx, in, out, count, type, op);
    return RingAllReduce(*mesh_, scratch_, options_.tcp_segment_bytes, ctx, in, out, count, type,
                         op);
  }

  // Several nodes of L ranks each:
  //   1. all-reduce within the node (shared memory);
  //   2. local rank i all-reduces piece i (1/L of the buffer) with local rank
  //      i of every other node (TCP ring), so each byte crosses nodes once
  //      per node instead of once per rank;
  //   3. within the node, each local rank broadcasts its piece.
  // An average reduces as a sum and scales once at the end (exact for
  // integer types).
  absl::Status HierarchicalAllReduce(const OpContext& ctx, const void* in, void* out, size_t count,
                                     DataType type, ReduceOp op) {
    const ReduceOp sum_op = op == ReduceOp::kAvg ? ReduceOp::kSum : op;
    const size_t esz = DataTypeSize(type);
    const int l = local_->size();
    char* data = static_cast<char*>(out);
    SUBLET_RETURN_IF_ERROR(local_->AllReduce(ctx, in, out, count, type, sum_op));
    Range mine = ChunkOf(count, l, local_->rank(), 16);
    SUBLET_RETURN_IF_ERROR(cross_->AllReduce(ctx, data + mine.begin * esz, data + mine.begin * esz,
                                             mine.size(), type, sum_op));
    for (int j = 0; j < l; ++j) {
      Range r = ChunkOf(count, l, j, 16);
      SUBLET_RETURN_IF_ERROR(local_->Broadcast(ctx, data + r.begin * esz, r.size(), type, j));
    }
    if (op == ReduceOp::kAvg) internal::ScaleForAverage(out, count, type, size());
    return absl::OkStatus();
  }

  absl::Status ReduceScatter(const OpContext& ctx, const void* in, void* out, size_t count,
                             DataType type, ReduceOp op) override {
    if (size() == 1 || count == 0) return Copy(in, out, count * DataTypeSize(type));
    if (shm_) return ShmReduceScatter(*shm_, ctx, in, out, count, type, op);
    return RingReduceScatter(*mesh_, scratch_, options_.tcp_segment_bytes, ctx, in, out, count,
                             type, op);
  }

  absl::Status AllGather(const OpContext& ctx, const void* in, void* out, size_t count,
                         DataType type) override {
    if (size() == 1 || count == 0) return Copy(in, out, count * DataTypeSize(type));
    if (shm_) return ShmAllGather(*shm_, ctx, in, out, count, type);
    return RingAllGather(*mesh_, ctx, in, out, count, type);
  }

  absl::Status Broadcast(const OpContext& ctx, void* buf, size_t count, DataType type,
                         int root) override {
    if (size() == 1 || count == 0) return absl::OkStatus();
    if (shm_) return ShmBroadcast(*shm_, ctx, buf, count, type, root);
    return RingBroadcast(*mesh_, options_.tcp_segment_bytes, ctx, buf, count * DataTypeSize(type),
                         root);
  }

  // Each message is an 8-byte length, then the bytes; a length that differs
  // from what the receiver expects is InvalidArgument.
  absl::Status Send(const OpContext& ctx, const void* buf, size_t bytes, int peer) override {
    uint64_t n = bytes;
    std::string what = TcpMesh::Peer(ctx.op, peer);
    SUBLET_RETURN_IF_ERROR(internal::WriteFull(mesh_->fd(peer), &n, 8, ctx.deadline, what));
    return internal::WriteFull(mesh_->fd(peer), buf, bytes, ctx.deadline, what);
  }

  absl::Status Recv(const OpContext& ctx, void* buf, size_t bytes, int peer) override {
    uint64_t n = 0;
    std::string what = TcpMesh::Peer(ctx.op, peer);
    SUBLET_RETURN_IF_ERROR(internal::ReadFull(mesh_->fd(peer), &n, 8, ctx.deadline, what));
    if (n != bytes) {
      return absl::InvalidArgumentError(
          absl::StrCat(what, " sent ", n, " bytes, the receive expects ", bytes));
    }
    return internal::ReadFull(mesh_->fd(peer), buf, bytes, ctx.deadline, what);
  }

  absl::Status Barrier(const OpContext& ctx) override {
    if (size() == 1) return absl::OkStatus();
    if (shm_) return shm_->Sync(ctx);
    int32_t token = 0;
    return RingAllReduce(*mesh_, scratch_, 64, ctx, &token, &token, 1, DataType::kI32,
                         ReduceOp::kSum);
  }

  absl::StatusOr<std::unique_ptr<Backend>> Split(const OpContext& ctx, int color,
                                                 int key) override;

 private:
  static absl::Status Copy(const void* in, void* out, size_t bytes) {
    if (in != out && bytes > 0) std::memmove(out, in, bytes);
    return absl::OkStatus();
  }

  HostGroup group_;
  CommunicatorOptions options_;
  std::unique_ptr<TcpMesh> mesh_;
  std::unique_ptr<ShmSegment> shm_;  // null unless the whole group is on one node
  std::unique_ptr<Backend> local_;   // hierarchy: my node's ranks
  std::unique_ptr<Backend> cross_;   // hierarchy: my local index on every node
  Scratch scratch_;
  int splits_ = 0;
};

// Split: every rank publishes "color key node" under this split's number;
// members of a color sort by (key, parent rank) and build a new group in the
// store namespace "split<n>/<color>".
absl::StatusOr<std::unique_ptr<Backend>> HostBackend::Split(const OpContext& ctx, int color,
                                                            int key) {
  const int n = splits_++;
  SUBLET_ASSIGN_OR_RETURN(
      std::vector<std::string> all,
      AllGatherViaStore(*group_.store, absl::StrCat("split", n), rank(), size(),
                        absl::StrCat(color, " ", key, " ", group_.node), ctx.deadline));
  // Every parent rank waits until every child group is built: rank 0 serves
  // the store and must not leave while others still rendezvous through it.
  auto done = [&] {
    return AllGatherViaStore(*group_.store, absl::StrCat("split", n, "/done"), rank(), size(), "",
                             ctx.deadline)
        .status();
  };
  if (color < 0) {
    SUBLET_RETURN_IF_ERROR(done());
    return std::unique_ptr<Backend>();
  }
  std::vector<std::tuple<int, int, std::string>> members;  // key, parent rank, node
  for (int r = 0; r < size(); ++r) {
    std::vector<std::string> f = absl::StrSplit(all[r], absl::MaxSplits(' ', 2));
    int c, k;
    if (f.size() != 3 || !absl::SimpleAtoi(f[0], &c) || !absl::SimpleAtoi(f[1], &k)) {
      return absl::DataLossError(absl::StrCat("split: bad entry from rank ", r));
    }
    if (c == color) members.emplace_back(k, r, f[2]);
  }
  std::sort(members.begin(), members.end());
  HostGroup child;
  child.store = std::make_shared<PrefixStore>(group_.store, absl::StrCat("split", n, "/", color));
  child.size = static_cast<int>(members.size());
  child.node = group_.node;
  child.secret = group_.secret;
  for (int i = 0; i < child.size; ++i) {
    if (std::get<1>(members[i]) == rank()) child.rank = i;
  }
  auto made = CreateHostBackend(std::move(child), options_, ctx.deadline);
  SUBLET_RETURN_IF_ERROR(done());
  return made;
}

}  // namespace

absl::StatusOr<std::unique_ptr<internal::Backend>> CreateHostBackend(
    HostGroup group, const CommunicatorOptions& options, absl::Time deadline) {
  if (group.size < 1 || group.rank < 0 || group.rank >= group.size) {
    return absl::InvalidArgumentError(
        absl::StrCat("host backend: rank ", group.rank, " of ", group.size));
  }
  SUBLET_ASSIGN_OR_RETURN(std::vector<std::string> nodes,
                          AllGatherViaStore(*group.store, "node", group.rank, group.size,
                                            group.node, deadline));
  SUBLET_ASSIGN_OR_RETURN(
      std::unique_ptr<TcpMesh> mesh,
      TcpMesh::Connect(*group.store, group.rank, group.size, deadline, group.secret));
  std::unique_ptr<ShmSegment> shm;
  bool one_node = std::all_of(nodes.begin(), nodes.end(),
                              [&](const std::string& n) { return n == nodes[0]; });
  if (one_node && group.size > 1) {
    SUBLET_ASSIGN_OR_RETURN(shm, ShmSegment::Create(*group.store, group.rank, group.size,
                                                    options.shm_slot_bytes, options.shm_spin,
                                                    deadline));
  }
  // Nodes in order of their first rank; my index among my node's ranks.
  std::vector<std::string> order;
  std::map<std::string, int> per_node;
  int local_rank = 0;
  for (int r = 0; r < group.size; ++r) {
    if (per_node.count(nodes[r]) == 0) order.push_back(nodes[r]);
    if (r == group.rank) local_rank = per_node[nodes[r]];
    per_node[nodes[r]]++;
  }
  const int local_size = per_node[group.node];
  const bool uniform = std::all_of(per_node.begin(), per_node.end(),
                                   [&](const auto& kv) { return kv.second == local_size; });
  const int node_index =
      static_cast<int>(std::find(order.begin(), order.end(), group.node) - order.begin());
  auto backend = std::make_unique<HostBackend>(group, options, std::move(mesh), std::move(shm));
  if (!one_node && uniform && local_size > 1) {
    HostGroup local{std::make_shared<PrefixStore>(group.store, "local/" + group.node), local_rank,
                    local_size, group.node, group.secret};
    HostGroup cross{std::make_shared<PrefixStore>(group.store, absl::StrCat("cross/", local_rank)),
                    node_index, static_cast<int>(order.size()), group.node, group.secret};
    SUBLET_ASSIGN_OR_RETURN(auto l, CreateHostBackend(std::move(local), options, deadline));
    SUBLET_ASSIGN_OR_RETURN(auto c, CreateHostBackend(std::move(cross), options, deadline));
    backend->SetHierarchy(std::move(l), std::move(c));
  }
  return std::unique_ptr<internal::Backend>(std::move(backend));
}

}  // namespace sublet::collectives::host

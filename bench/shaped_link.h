// Two emulated nodes on one machine for benchmarks: network namespaces
// `<prefix>-a` and `<prefix>-b` joined only by a veth pair whose both ends are
// shaped with a token bucket (tc tbf) at a given rate. Nothing else is
// reachable from them and nothing in them is reachable from the root
// namespace, so servers started inside may bind any address.
//
// Needs root. The destructor deletes both namespaces (which removes the veth
// pair and its qdiscs); Create also removes leftovers of the same prefix.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace sublet::bench {

class ShapedLink {
 public:
  // rate: a tc rate such as "1gbit".
  static absl::StatusOr<std::unique_ptr<ShapedLink>> Create(const std::string& rate);
  ~ShapedLink();

  const std::string& ns(int side) const { return ns_[side]; }
  const std::string& address(int side) const { return address_[side]; }
  const std::string& rate() const { return rate_; }

  // argv prefixed so that it runs inside namespace `side`.
  std::vector<std::string> Inside(int side, std::vector<std::string> argv) const;

 private:
  ShapedLink() = default;
  std::string rate_;
  std::string ns_[2];
  std::string address_[2];
};

}  // namespace sublet::bench

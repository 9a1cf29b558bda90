// Separate hosts on one machine for tests: network namespaces joined to the
// root namespace by veth pairs. A partition is the root side of a pair taken
// down; healing brings it back up (the kernel restores the route).
//
// Needs root (CI runs as root); Create() says why when it cannot.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "common/status.h"

namespace sublet::e2e {

class TestNetwork {
 public:
  // Namespaces 0..hosts-1, each with address 10.<net>.<i>.2 and a default
  // route to the root namespace, plus a service address 10.<net>.255.1 in
  // the root namespace that every host reaches (the coordinator binds it).
  static absl::StatusOr<std::unique_ptr<TestNetwork>> Create(int hosts);
  ~TestNetwork();

  const std::string& service_address() const { return service_address_; }
  const std::string& ns(int host) const { return namespaces_[host]; }
  std::string address(int host) const;

  absl::Status Partition(int host);
  absl::Status Heal(int host);

 private:
  TestNetwork() = default;
  std::string prefix_;
  int net_ = 0;
  std::string service_address_;
  std::vector<std::string> namespaces_;
  std::vector<std::string> links_;  // root-side veth names, to delete
};

}  // namespace sublet::e2e

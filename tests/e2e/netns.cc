#include "tests/e2e/netns.h"

#include <unistd.h>

#include "fmt/format.h"
#include "tests/e2e/test_cluster.h"

namespace sublet::e2e {
namespace {

absl::Status Ip(const std::vector<std::string>& args) {
  std::vector<std::string> argv = {"/usr/sbin/ip"};
  argv.insert(argv.end(), args.begin(), args.end());
  CommandResult r = Run(argv, {}, "/tmp");
  if (r.exit_code != 0) {
    std::string cmd;
    for (const std::string& a : argv) cmd += a + " ";
    return absl::FailedPreconditionError(fmt::format("{}failed: {}", cmd, r.err));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::unique_ptr<TestNetwork>> TestNetwork::Create(int hosts) {
  std::unique_ptr<TestNetwork> net(new TestNetwork());
  // The subnet 10.N.0.0/16 and every name are claimed at once by creating
  // the service link named after N: `ip link add` fails for a name that
  // exists, so parallel test processes (or a killed run's leftovers) never
  // share a subnet, a link or a namespace.
  std::string svc;
  absl::Status claimed = absl::UnavailableError("no free subnet in 10.100-249.0.0");
  for (int tries = 0; tries < 150 && !claimed.ok(); ++tries) {
    net->net_ = 100 + (getpid() + tries) % 150;
    net->prefix_ = fmt::format("sl{}", net->net_);
    svc = net->prefix_ + "s";
    claimed = Ip({"link", "add", svc + "a", "type", "veth", "peer", "name", svc + "b"});
    if (!claimed.ok() && claimed.message().find("exists") == std::string::npos) return claimed;
  }
  SUBLET_RETURN_IF_ERROR(claimed);
  net->links_.push_back(svc + "a");
  net->service_address_ = fmt::format("10.{}.255.1", net->net_);
  SUBLET_RETURN_IF_ERROR(Ip({"addr", "add", net->service_address_ + "/32", "dev", svc + "a"}));
  SUBLET_RETURN_IF_ERROR(Ip({"link", "set", svc + "a", "up"}));
  SUBLET_RETURN_IF_ERROR(Ip({"link", "set", svc + "b", "up"}));
  for (int i = 0; i < hosts; ++i) {
    std::string ns = fmt::format("{}-{}", net->prefix_, i);
    std::string host_side = fmt::format("{}h{}", net->prefix_, i);
    std::string ns_side = fmt::format("{}n{}", net->prefix_, i);
    SUBLET_RETURN_IF_ERROR(Ip({"netns", "add", ns}));
    net->namespaces_.push_back(ns);
    SUBLET_RETURN_IF_ERROR(Ip({"link", "add", host_side, "type", "veth", "peer", "name", ns_side}));
    net->links_.push_back(host_side);
    SUBLET_RETURN_IF_ERROR(Ip({"link", "set", ns_side, "netns", ns}));
    SUBLET_RETURN_IF_ERROR(
        Ip({"addr", "add", fmt::format("10.{}.{}.1/24", net->net_, i), "dev", host_side}));
    SUBLET_RETURN_IF_ERROR(Ip({"link", "set", host_side, "up"}));
    SUBLET_RETURN_IF_ERROR(Ip({"-n", ns, "addr", "add", net->address(i) + "/24", "dev", ns_side}));
    SUBLET_RETURN_IF_ERROR(Ip({"-n", ns, "link", "set", ns_side, "up"}));
    SUBLET_RETURN_IF_ERROR(Ip({"-n", ns, "link", "set", "lo", "up"}));
    SUBLET_RETURN_IF_ERROR(Ip({"-n", ns, "route", "add", "default", "via",
                               fmt::format("10.{}.{}.1", net->net_, i)}));
  }
  return net;
}

TestNetwork::~TestNetwork() {
  for (const std::string& link : links_) (void)Ip({"link", "del", link});
  for (const std::string& ns : namespaces_) (void)Ip({"netns", "del", ns});
}

std::string TestNetwork::address(int host) const {
  return fmt::format("10.{}.{}.2", net_, host);
}

absl::Status TestNetwork::Partition(int host) {
  return Ip({"link", "set", links_[host + 1], "down"});
}

absl::Status TestNetwork::Heal(int host) { return Ip({"link", "set", links_[host + 1], "up"}); }

}  // namespace sublet::e2e

#include "bench/shaped_link.h"

#include <unistd.h>

#include <cstdlib>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace sublet::bench {
namespace {

absl::Status Sh(const std::vector<std::string>& argv) {
  const std::string cmd = absl::StrJoin(argv, " ") + " >/dev/null 2>&1";
  if (std::system(cmd.c_str()) == 0) return absl::OkStatus();
  return absl::UnavailableError("shaped link: '" + absl::StrJoin(argv, " ") +
                                "' failed (network namespaces need root)");
}

}  // namespace

absl::StatusOr<std::unique_ptr<ShapedLink>> ShapedLink::Create(const std::string& rate) {
  std::unique_ptr<ShapedLink> link(new ShapedLink());
  const int id = static_cast<int>(getpid() % 250) + 1;
  link->rate_ = rate;
  const std::string prefix = absl::StrCat("sublet-bench-", id);
  const std::string veth[2] = {absl::StrCat("sbv", id, "a"), absl::StrCat("sbv", id, "b")};
  for (int side = 0; side < 2; ++side) {
    link->ns_[side] = prefix + (side == 0 ? "-a" : "-b");
    link->address_[side] = absl::StrCat("10.213.", id, ".", side + 1);
    (void)Sh({"ip", "netns", "del", link->ns_[side]});  // a leftover of a killed run
  }
  for (int side = 0; side < 2; ++side) {
    if (absl::Status s = Sh({"ip", "netns", "add", link->ns_[side]}); !s.ok()) {
      // Nothing to clean beyond what the destructor deletes.
      return s;
    }
  }
  auto& l = *link;
  std::vector<std::vector<std::string>> steps = {
      {"ip", "link", "add", veth[0], "type", "veth", "peer", "name", veth[1]}};
  for (int side = 0; side < 2; ++side) {
    const std::string& ns = l.ns_[side];
    steps.push_back({"ip", "link", "set", veth[side], "netns", ns});
    steps.push_back({"ip", "-n", ns, "addr", "add", l.address_[side] + "/24", "dev", veth[side]});
    steps.push_back({"ip", "-n", ns, "link", "set", "lo", "up"});
    steps.push_back({"ip", "-n", ns, "link", "set", veth[side], "up"});
    steps.push_back({"ip", "netns", "exec", ns, "tc", "qdisc", "add", "dev", veth[side], "root",
                     "tbf", "rate", rate, "burst", "256kb", "latency", "50ms"});
  }
  for (const auto& step : steps) {
    if (absl::Status s = Sh(step); !s.ok()) return s;  // the destructor cleans up
  }
  return link;
}

ShapedLink::~ShapedLink() {
  for (const std::string& ns : ns_) {
    if (!ns.empty()) (void)Sh({"ip", "netns", "del", ns});
  }
}

std::vector<std::string> ShapedLink::Inside(int side, std::vector<std::string> argv) const {
  std::vector<std::string> out = {"ip", "netns", "exec", ns_[side]};
  out.insert(out.end(), argv.begin(), argv.end());
  return out;
}

}  // namespace sublet::bench

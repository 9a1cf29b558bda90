// `sublet reclaim`, `sublet release`, `sublet reclaims` (admin token only).
#include <fmt/format.h>

#include <chrono>
#include <memory>
#include <thread>

#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "client/cli/cli.h"
#include "common/duration.h"
#include "protocols/ids.h"

namespace sublet::client::cli {
namespace {

struct ReclaimFlags {
  std::string nodes;
  uint32_t gpus = 0;
  std::string deadline;
  std::string reason;
  bool no_wait = false;
};

std::vector<std::string> SplitNames(const std::string& text) {
  return absl::StrSplit(text, ',', absl::SkipEmpty());
}

// One line per change: node and job states as the transaction moves on.
std::string ProgressLine(const protocols::ReclaimInfo& r) {
  std::vector<std::string> parts;
  for (const auto& n : r.nodes) parts.push_back(fmt::format("{} {}", n.name, n.state));
  for (const auto& v : r.jobs) {
    parts.push_back(v.checkpoint_step >= 0
                        ? fmt::format("job {} {} (checkpoint step {})", v.job_id, v.state,
                                      v.checkpoint_step)
                        : fmt::format("job {} {}", v.job_id, v.state));
  }
  return fmt::format("reclaim {}: {}; {}", r.id, r.state, absl::StrJoin(parts, ", "));
}

// Nodes are handed over as soon as no rank runs on them, which can be before
// a victim's ranks elsewhere have finished: settled means both.
bool Settled(const protocols::ReclaimInfo& r) {
  if (r.state == "draining") return false;
  for (const auto& v : r.jobs) {
    if (v.state == "preempting") return false;
  }
  return true;
}

// Follows the reclaim until its nodes are handed over and every victim has
// acknowledged (or was killed). The deadline bounds it: workers kill what
// still runs then, so waiting much longer means a worker is unreachable; we
// then say so and stop.
int Follow(Session& session, Client& client, protocols::ReclaimInfo r) {
  const absl::Time give_up = absl::FromUnixMillis(r.deadline_unix_ms) + absl::Seconds(60);
  std::string last;
  while (!Settled(r) && absl::Now() < give_up) {
    std::string line = ProgressLine(r);
    if (!session.json() && line != last) session.out() << line << std::endl;
    last = line;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));  // polling the coordinator
    absl::StatusOr<std::vector<protocols::ReclaimInfo>> now = client.ListReclaims(r.id);
    if (!now.ok()) return session.Fail(now.status());
    if (now->size() != 1) return session.Fail(absl::InternalError("reclaim vanished"));
    r = (*now)[0];
  }
  if (session.json()) return session.PrintJson(ReclaimToJson(r));
  session.out() << RenderReclaimDetail(r, absl::Now());
  if (!Settled(r)) {
    session.err() << fmt::format(
                         "sublet: reclaim {} is not settled 60s after its deadline (a worker "
                         "may be unreachable); follow it with `sublet reclaims {}`",
                         r.id, r.id)
                  << std::endl;
    return 1;
  }
  return 0;
}

int RunReclaim(const ReclaimFlags& flags, Session& session) {
  protocols::ReclaimRequest request;
  request.nodes = SplitNames(flags.nodes);
  request.gpus = flags.gpus;
  request.reason = flags.reason;
  absl::StatusOr<absl::Duration> deadline = ParseDuration(flags.deadline);
  if (!deadline.ok()) {
    return session.Fail(absl::InvalidArgumentError(
        fmt::format("--deadline: {}", std::string(deadline.status().message()))));
  }
  request.deadline_ms = absl::ToInt64Milliseconds(*deadline);
  absl::StatusOr<Client*> client = session.client();
  if (!client.ok()) return session.Fail(client.status());
  absl::StatusOr<protocols::ReclaimInfo> reclaim = (*client)->Reclaim(request);
  if (!reclaim.ok()) return session.Fail(reclaim.status());
  if (!session.json()) session.out() << "reclaim " << reclaim->id << std::endl;
  for (const auto& w : reclaim->warnings) session.err() << "warning: " << w << std::endl;
  if (flags.no_wait) {
    if (session.json()) return session.PrintJson(ReclaimToJson(*reclaim));
    session.out() << RenderReclaimDetail(*reclaim, absl::Now());
    return 0;
  }
  return Follow(session, **client, *std::move(reclaim));
}

int PrintReclaims(Session& session, const std::vector<protocols::ReclaimInfo>& reclaims,
                  bool detail) {
  if (session.json()) {
    nlohmann::json list = nlohmann::json::array();
    for (const auto& r : reclaims) list.push_back(ReclaimToJson(r));
    return session.PrintJson({{"reclaims", list}});
  }
  if (!detail) {
    session.out() << RenderReclaimsTable(reclaims, absl::Now());
    return 0;
  }
  for (const auto& r : reclaims) session.out() << RenderReclaimDetail(r, absl::Now());
  return 0;
}

// The RECLAIM argument, when given, is checked before anything is sent.
absl::StatusOr<uint64_t> ReclaimArg(const std::string& arg) {
  if (arg.empty()) return 0;  // none given
  return protocols::ParseId("reclaim", arg);
}

int RunRelease(const std::string& arg, const std::string& nodes, Session& session) {
  absl::StatusOr<uint64_t> id = ReclaimArg(arg);
  if (!id.ok()) return session.Fail(id.status());
  protocols::ReleaseRequest request{*id, SplitNames(nodes)};
  absl::StatusOr<Client*> client = session.client();
  if (!client.ok()) return session.Fail(client.status());
  absl::StatusOr<std::vector<protocols::ReclaimInfo>> reclaims = (*client)->Release(request);
  if (!reclaims.ok()) return session.Fail(reclaims.status());
  return PrintReclaims(session, *reclaims, /*detail=*/true);
}

int RunReclaims(const std::string& arg, Session& session) {
  absl::StatusOr<uint64_t> id = ReclaimArg(arg);
  if (!id.ok()) return session.Fail(id.status());
  absl::StatusOr<Client*> client = session.client();
  if (!client.ok()) return session.Fail(client.status());
  absl::StatusOr<std::vector<protocols::ReclaimInfo>> reclaims = (*client)->ListReclaims(*id);
  if (!reclaims.ok()) return session.Fail(reclaims.status());
  return PrintReclaims(session, *reclaims, /*detail=*/*id != 0);
}

}  // namespace

void AddReclaimCommands(CLI::App& app, Command* chosen) {
  auto flags = std::make_shared<ReclaimFlags>();
  CLI::App* reclaim = app.add_subcommand(
      "reclaim",
      "Admin: take capacity back from tenants. Nodes (named, or chosen to free N GPUs touching "
      "the fewest jobs, then the lowest priority, then the least work since a checkpoint) are "
      "drained; every job on them is told to checkpoint and exit by the deadline, then requeued. "
      "Prints the reclaim id, follows its progress per node and per job until the nodes are "
      "handed over (`reclaimed`), and ends with the summary.");
  reclaim->add_option("--nodes", flags->nodes, "Nodes to take, comma-separated");
  reclaim->add_option("--gpus", flags->gpus, "Or: how many GPUs to take (whole nodes)");
  reclaim->add_option("--deadline", flags->deadline,
                      "Time the jobs get to checkpoint and exit, e.g. 60s; SIGKILL after it")
      ->required();
  reclaim->add_option("--reason", flags->reason, "Why (audit log and the jobs' events)")
      ->required();
  reclaim->add_flag("--no-wait", flags->no_wait, "Return once the reclaim is stored");
  reclaim->callback([chosen, flags] {
    *chosen = [flags](Session& session) { return RunReclaim(*flags, session); };
  });

  auto release_id = std::make_shared<std::string>();
  auto release_nodes = std::make_shared<std::string>();
  CLI::App* release = app.add_subcommand(
      "release", "Admin: give reclaimed nodes back to tenants (by reclaim id or --nodes); "
                 "waiting jobs start on them.");
  release->add_option("reclaim", *release_id, "Reclaim id");
  release->add_option("--nodes", *release_nodes, "Nodes to release, comma-separated");
  release->callback([chosen, release_id, release_nodes] {
    *chosen = [release_id, release_nodes](Session& session) {
      return RunRelease(*release_id, *release_nodes, session);
    };
  });

  auto list_id = std::make_shared<std::string>();
  CLI::App* reclaims = app.add_subcommand(
      "reclaims", "Admin: list reclaims (id, state, who, nodes, jobs, deadline, reason), or "
                  "show one with its progress per node and per job.");
  reclaims->add_option("reclaim", *list_id, "Reclaim id (optional)");
  reclaims->callback([chosen, list_id] {
    *chosen = [list_id](Session& session) { return RunReclaims(*list_id, session); };
  });
}

}  // namespace sublet::client::cli

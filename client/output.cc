#include "client/output.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <string>

#include "absl/strings/str_join.h"
#include "common/duration.h"
#include "common/plural.h"
#include "protocols/job_spec.h"

namespace sublet::client {
namespace {

using nlohmann::json;
using protocols::JobInfo;
using protocols::NodeInfo;

json TimeOrNull(int64_t unix_ms) {
  if (unix_ms == 0) return nullptr;
  return FormatTimestamp(unix_ms);
}

json SpecToJson(const protocols::JobSpec& spec) {
  json out = {
      {"num_nodes", spec.nodes},
      {"gpus_per_node", spec.gpus_per_node},
      {"tensor_parallel", spec.tensor_parallel},
      {"priority", std::string(protocols::PriorityName(spec.priority))},
      {"max_restarts", spec.max_restarts},
      {"elastic_min_nodes", spec.elastic_min_nodes},
      {"command", spec.command},
      {"time_limit", nullptr},
  };
  if (spec.time_limit > absl::ZeroDuration())
    out["time_limit"] = sublet::FormatDuration(spec.time_limit);
  out["checkpoint"] = {{"every_steps", spec.checkpoint_every_steps},
                       {"keep", spec.checkpoint_keep}};
  json env_keys = json::array();
  for (const auto& [key, value] : spec.env) env_keys.push_back(key);  // values may be secrets
  out["env_keys"] = env_keys;
  out["progress_timeout"] = spec.progress_timeout > absl::ZeroDuration()
                                ? json(sublet::FormatDuration(spec.progress_timeout))
                                : json(nullptr);
  out["launcher"] = spec.launcher.empty() ? json(nullptr) : json(spec.launcher);
  out["preemption_signal"] =
      spec.preemption_signal.empty() ? json(nullptr) : json(spec.preemption_signal);
  json deps = json::array();
  for (const protocols::Dependency& d : spec.depends_on) {
    deps.push_back({{"job", std::to_string(d.job)}, {"when", std::string(protocols::DependencyWhenName(d.when))}});
  }
  out["depends_on"] = deps;
  return out;
}

json RankToJson(const protocols::RankPlacement& rank) {
  json out = {{"rank", rank.rank}, {"node", rank.node},   {"local_rank", rank.local_rank},
              {"gpus", rank.gpus}, {"state", rank.state}, {"exit_code", nullptr}};
  if (rank.state == "exited") out["exit_code"] = rank.exit_code;
  return out;
}

json EventToJson(const protocols::JobEvent& event) {
  return {{"time", FormatTimestamp(event.time_unix_ms)},
          {"kind", event.kind},
          {"who", event.who},
          {"message", event.message}};
}

std::string JoinOrDash(const std::vector<std::string>& items) {
  return items.empty() ? "-" : absl::StrJoin(items, ",");
}

std::string OrDash(const std::string& text) { return text.empty() ? "-" : text; }

// Ids are integers on the wire; people and scripts see them as decimal text,
// in JSON as strings, so `-o json` is what it was when the wire carried text.
std::string IdText(uint64_t id) { return std::to_string(id); }
json IdOrNull(uint64_t id) { return id == 0 ? json(nullptr) : json(IdText(id)); }
std::vector<std::string> IdTexts(const std::vector<uint64_t>& ids) {
  std::vector<std::string> out;
  out.reserve(ids.size());
  for (uint64_t id : ids) out.push_back(IdText(id));
  return out;
}

}  // namespace

json JobToJson(const JobInfo& job, bool detailed) {
  json out = {
      {"id", IdText(job.id)},
      {"name", job.name},
      {"tenant", job.tenant},
      {"state", job.state},
      {"reason", job.reason},
      {"restarts", job.restarts},
      {"preemptions", job.preemptions},
      {"attempt", job.attempt},
      {"nodes", job.nodes},
      {"last_checkpoint_step", nullptr},
      {"submit_time", TimeOrNull(job.submit_time_unix_ms)},
      {"start_time", TimeOrNull(job.start_time_unix_ms)},
      {"end_time", TimeOrNull(job.end_time_unix_ms)},
  };
  if (job.last_checkpoint_step >= 0) out["last_checkpoint_step"] = job.last_checkpoint_step;
  out["gpu_seconds"] = job.gpu_seconds;
  out["gpu_seconds_lost"] = job.gpu_seconds_lost;
  out["reclaim_id"] = IdOrNull(job.reclaim_id);
  out["preempt_why"] = job.preempt_why.empty() ? json(nullptr) : json(job.preempt_why);
  out["resume_step"] = job.resume_step >= 0 ? json(job.resume_step) : json(nullptr);
  out["queue_position"] = job.queue_position > 0 ? json(job.queue_position) : json(nullptr);
  out["progress"] = nullptr;
  if (job.progress.step >= 0) {
    out["progress"] = {{"step", job.progress.step},
                       {"loss", std::isfinite(job.progress.loss) ? json(job.progress.loss)
                                                                 : json(nullptr)},
                       {"tokens_per_s", job.progress.tokens_per_s},
                       {"time", TimeOrNull(job.progress.time_unix_ms)}};
  }
  out.update(SpecToJson(job.spec));
  out["array"] = nullptr;
  if (job.array_id != 0) {
    out["array"] = {{"id", IdText(job.array_id)},
                    {"index", job.array_index},
                    {"size", job.array_size},
                    {"spec", job.spec.array}};
  }
  if (detailed) {
    out["ranks"] = json::array();
    for (const auto& rank : job.ranks) out["ranks"].push_back(RankToJson(rank));
    out["events"] = json::array();
    for (const auto& event : job.events) out["events"].push_back(EventToJson(event));
  }
  return out;
}

json NodeToJson(const NodeInfo& node) {
  return {{"name", node.name},
          {"state", node.state},
          {"gpus", node.gpus},
          {"gpus_free", node.gpus_free},
          {"jobs", IdTexts(node.jobs)},
          {"address", node.address},
          {"last_heartbeat", TimeOrNull(node.last_heartbeat_unix_ms)},
          {"reclaim_id", IdOrNull(node.reclaim_id)},
          {"isolation", node.isolation.empty() ? json(nullptr) : json(node.isolation)}};
}

json ReclaimToJson(const protocols::ReclaimInfo& r) {
  json nodes = json::array();
  for (const auto& n : r.nodes) nodes.push_back({{"name", n.name}, {"state", n.state}});
  json jobs = json::array();
  for (const auto& v : r.jobs) {
    jobs.push_back(
        {{"job_id", IdText(v.job_id)},
         {"tenant", v.tenant},
         {"state", v.state},
         {"why", v.why},
         {"checkpoint_step", v.checkpoint_step >= 0 ? json(v.checkpoint_step) : json()},
         {"estimated_save_s", v.estimated_save_s >= 0 ? json(v.estimated_save_s) : json()}});
  }
  return {{"id", IdText(r.id)},
          {"who", r.who},
          {"reason", r.reason},
          {"state", r.state},
          {"requested_nodes", r.requested_nodes},
          {"requested_gpus", r.requested_gpus},
          {"created_time", TimeOrNull(r.created_unix_ms)},
          {"deadline_time", TimeOrNull(r.deadline_unix_ms)},
          {"reclaimed_time", TimeOrNull(r.reclaimed_unix_ms)},
          {"released_time", TimeOrNull(r.released_unix_ms)},
          {"seconds_to_reclaim",
           r.reclaimed_unix_ms ? json((r.reclaimed_unix_ms - r.created_unix_ms) / 1000.0) : json()},
          {"nodes", nodes},
          {"jobs", jobs},
          {"warnings", r.warnings}};
}

namespace {

struct TenantTotals {
  int jobs = 0;
  double gpu_seconds = 0;
  double gpu_seconds_lost = 0;
};

// Per tenant, in name order.
std::map<std::string, TenantTotals> SumByTenant(const std::vector<JobInfo>& jobs) {
  std::map<std::string, TenantTotals> by_tenant;
  for (const auto& job : jobs) {
    TenantTotals& t = by_tenant[job.tenant];
    ++t.jobs;
    t.gpu_seconds += job.gpu_seconds;
    t.gpu_seconds_lost += job.gpu_seconds_lost;
  }
  return by_tenant;
}

}  // namespace

json TenantTotalsToJson(const std::vector<JobInfo>& jobs) {
  json out = json::array();
  for (const auto& [tenant, t] : SumByTenant(jobs)) {
    out.push_back({{"tenant", tenant}, {"jobs", t.jobs}, {"gpu_seconds", t.gpu_seconds},
                   {"gpu_seconds_lost", t.gpu_seconds_lost}});
  }
  return out;
}

json AuditEntryToJson(const protocols::AuditEntry& entry) {
  return {{"time", FormatTimestamp(entry.time_unix_ms)},
          {"who", entry.who},
          {"action", entry.action},
          {"detail", entry.detail}};
}

json ErrorToJson(const absl::Status& status) {
  return {{"error",
           {{"code", absl::StatusCodeToString(status.code())},
            {"message", std::string(status.message())}}}};
}

std::string DumpJson(const json& document) {
  return document.dump(2, ' ', false, json::error_handler_t::replace) + "\n";
}

std::string FormatTimestamp(int64_t unix_ms) {
  if (unix_ms == 0) return "";
  return absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", absl::FromUnixMillis(unix_ms),
                          absl::UTCTimeZone());
}

std::string FormatAge(int64_t unix_ms, absl::Time now) {
  if (unix_ms == 0) return "-";
  const int64_t seconds =
      std::max<int64_t>(0, absl::ToInt64Seconds(now - absl::FromUnixMillis(unix_ms)));
  if (seconds < 120) return fmt::format("{}s", seconds);
  if (seconds < 2 * 3600) return fmt::format("{}m", seconds / 60);
  if (seconds < 2 * 86400) return fmt::format("{}h", seconds / 3600);
  return fmt::format("{}d", seconds / 86400);
}

std::string RenderTable(const std::vector<std::string>& header,
                        const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> widths(header.size(), 0);
  auto measure = [&widths](const std::vector<std::string>& row) {
    for (size_t i = 0; i < row.size() && i < widths.size(); ++i) {
      widths[i] = std::max(widths[i], row[i].size());
    }
  };
  measure(header);
  for (const auto& row : rows) measure(row);

  std::string out;
  auto emit = [&](const std::vector<std::string>& row) {
    std::string line;
    for (size_t i = 0; i < row.size() && i < widths.size(); ++i) {
      line += row[i];
      if (i + 1 < row.size()) line += std::string(widths[i] - row[i].size() + 2, ' ');
    }
    line.erase(line.find_last_not_of(' ') + 1);
    out += line + "\n";
  };
  emit(header);
  for (const auto& row : rows) emit(row);
  return out;
}

std::string DisplayName(const JobInfo& job) {
  return job.array_id == 0 ? job.name : fmt::format("{}[{}]", job.name, job.array_index);
}

std::string RenderJobsTable(const std::vector<JobInfo>& jobs, absl::Time now) {
  std::vector<std::vector<std::string>> rows;
  for (const auto& job : jobs) {
    // A pending job holds no nodes: `nodes` is where its last attempt ran.
    const std::string nodes = job.state == "pending" ? "-" : JoinOrDash(job.nodes);
    // A pending job's place in its tenant's queue: `pending #2`.
    const std::string state = job.queue_position > 0
                                  ? fmt::format("{} #{}", job.state, job.queue_position)
                                  : job.state;
    rows.push_back({IdText(job.id), DisplayName(job), job.tenant, state, nodes,
                    std::to_string(job.restarts), std::to_string(job.preemptions),
                    fmt::format("{:.0f}", job.gpu_seconds),
                    fmt::format("{:.0f}", job.gpu_seconds_lost),
                    FormatAge(job.submit_time_unix_ms, now), OrDash(job.reason)});
  }
  std::string out = RenderTable({"ID", "NAME", "TENANT", "STATE", "NODES", "RESTARTS", "PREEMPT",
                                 "GPU-S", "LOST-GPU-S", "AGE", "REASON"},
                                rows);
  std::vector<std::vector<std::string>> trows;
  for (const auto& [tenant, t] : SumByTenant(jobs)) {
    trows.push_back({tenant, std::to_string(t.jobs), fmt::format("{:.0f}", t.gpu_seconds),
                     fmt::format("{:.0f}", t.gpu_seconds_lost)});
  }
  if (!trows.empty()) out += "\n" + RenderTable({"TENANT", "JOBS", "GPU-S", "LOST-GPU-S"}, trows);
  return out;
}

std::string RenderReclaimsTable(const std::vector<protocols::ReclaimInfo>& reclaims,
                                absl::Time now) {
  std::vector<std::vector<std::string>> rows;
  for (const auto& r : reclaims) {
    std::vector<std::string> nodes;
    for (const auto& n : r.nodes) nodes.push_back(n.name);
    std::vector<std::string> jobs;
    for (const auto& v : r.jobs) jobs.push_back(IdText(v.job_id));
    rows.push_back({IdText(r.id), r.state, r.who, JoinOrDash(nodes), JoinOrDash(jobs),
                    FormatTimestamp(r.deadline_unix_ms), FormatAge(r.created_unix_ms, now),
                    r.reason});
  }
  return RenderTable({"ID", "STATE", "WHO", "NODES", "JOBS", "DEADLINE", "AGE", "REASON"}, rows);
}

std::string RenderReclaimDetail(const protocols::ReclaimInfo& r, absl::Time now) {
  const int64_t now_ms = absl::ToUnixMillis(now);
  std::string deadline = FormatTimestamp(r.deadline_unix_ms);
  if (r.state == "draining") {
    deadline += r.deadline_unix_ms > now_ms
                    ? fmt::format(" (in {:.1f}s)", (r.deadline_unix_ms - now_ms) / 1000.0)
                    : std::string(" (passed)");
  }
  std::string out = fmt::format("Reclaim {}: {}, by {} ({})\nDeadline:  {}\n", r.id, r.state,
                                r.who, r.reason, deadline);
  if (r.reclaimed_unix_ms) {
    out += fmt::format("Reclaimed: after {:.2f}s\n",
                       (r.reclaimed_unix_ms - r.created_unix_ms) / 1000.0);
  }
  std::vector<std::vector<std::string>> nodes;
  for (const auto& n : r.nodes) nodes.push_back({n.name, n.state});
  out += "\n" + RenderTable({"NODE", "STATE"}, nodes);
  if (!r.jobs.empty()) {
    std::vector<std::vector<std::string>> jobs;
    for (const auto& v : r.jobs) {
      jobs.push_back({IdText(v.job_id), v.tenant, v.state,
                      v.checkpoint_step >= 0 ? std::to_string(v.checkpoint_step) : "-",
                      v.estimated_save_s >= 0 ? fmt::format("{:.1f}s", v.estimated_save_s) : "-",
                      v.why});
    }
    out += "\n" + RenderTable({"JOB", "TENANT", "STATE", "CHECKPOINT", "EST-SAVE", "WHY"}, jobs);
  }
  for (const auto& w : r.warnings) out += "warning: " + w + "\n";
  return out;
}

std::string RenderAuditTable(const std::vector<protocols::AuditEntry>& entries) {
  std::vector<std::vector<std::string>> rows;
  for (const auto& e : entries) {
    rows.push_back({FormatTimestamp(e.time_unix_ms), e.who, e.action, e.detail});
  }
  return RenderTable({"TIME", "WHO", "ACTION", "DETAIL"}, rows);
}

nlohmann::json TenantsToJson(const protocols::TenantListReply& reply) {
  json tenants = json::array();
  for (const protocols::TenantInfo& t : reply.tenants) {
    tenants.push_back({{"name", t.name},
                       {"quota_gpus", t.quota_gpus ? json(*t.quota_gpus) : json(nullptr)},
                       {"quota_in_force_gpus", t.quota_in_force_gpus},
                       {"borrow_limit_gpus",
                        t.borrow_limit_gpus ? json(*t.borrow_limit_gpus) : json(nullptr)},
                       {"weight", t.weight},
                       {"max_priority", std::string(protocols::PriorityName(t.max_priority))},
                       {"in_use_gpus", t.in_use_gpus},
                       {"borrowed_gpus", t.borrowed_gpus},
                       {"pending_jobs", t.pending_jobs},
                       {"pending_gpus", t.pending_gpus},
                       {"share", t.share},
                       {"decayed_gpu_seconds", t.decayed_gpu_seconds},
                       {"gpu_seconds", t.gpu_seconds},
                       {"gpu_seconds_within_quota", t.gpu_seconds - t.gpu_seconds_borrowed},
                       {"gpu_seconds_borrowed", t.gpu_seconds_borrowed},
                       {"gpu_seconds_lost", t.gpu_seconds_lost}});
  }
  return {{"tenants", tenants}, {"policies", reply.policies}, {"pool_gpus", reply.pool_gpus}};
}

std::string RenderTenantsTable(const protocols::TenantListReply& reply) {
  std::vector<std::vector<std::string>> rows;
  for (const protocols::TenantInfo& t : reply.tenants) {
    std::string quota = t.quota_gpus ? std::to_string(*t.quota_gpus) : "-";
    if (t.quota_gpus && t.quota_in_force_gpus != *t.quota_gpus) {
      quota += fmt::format(" ({} in force)", t.quota_in_force_gpus);
    }
    rows.push_back({t.name, quota,
                    t.borrow_limit_gpus ? std::to_string(*t.borrow_limit_gpus) : "none",
                    fmt::format("{:g}", t.weight), std::string(protocols::PriorityName(t.max_priority)),
                    std::to_string(t.in_use_gpus), std::to_string(t.borrowed_gpus),
                    fmt::format("{} ({} GPUs)", t.pending_jobs, t.pending_gpus),
                    fmt::format("{:.3f}", t.share), fmt::format("{:.0f}", t.decayed_gpu_seconds),
                    fmt::format("{:.0f}", t.gpu_seconds - t.gpu_seconds_borrowed),
                    fmt::format("{:.0f}", t.gpu_seconds_borrowed),
                    fmt::format("{:.0f}", t.gpu_seconds_lost)});
  }
  std::string out = RenderTable({"TENANT", "QUOTA", "BORROW-LIMIT", "WEIGHT", "MAX-PRIORITY",
                                 "IN-USE", "BORROWED", "PENDING", "SHARE", "DECAYED-GPU-S",
                                 "GPU-S-IN-QUOTA", "GPU-S-BORROWED", "GPU-S-LOST"},
                                rows);
  if (!reply.policies) out += "no quotas or fair share configured: priority, then submit order\n";
  return out;
}

std::string RenderNodesTable(const std::vector<NodeInfo>& nodes, absl::Time now) {
  std::vector<std::vector<std::string>> rows;
  for (const auto& node : nodes) {
    std::string seen = FormatAge(node.last_heartbeat_unix_ms, now);
    if (seen != "-") seen += " ago";
    rows.push_back({node.name, node.state, std::to_string(node.gpus),
                    std::to_string(node.gpus_free), JoinOrDash(IdTexts(node.jobs)),
                    OrDash(node.address), seen, OrDash(node.isolation)});
  }
  return RenderTable(
      {"NAME", "STATE", "GPUS", "FREE", "JOBS", "ADDRESS", "LAST-SEEN", "ISOLATION"}, rows);
}

}  // namespace sublet::client

namespace sublet::client {
namespace {

std::string SpecSummary(const protocols::JobSpec& spec) {
  return fmt::format(
      "{} x {}, tensor {}, priority {}, max_restarts {}, time_limit {}", Plural(spec.nodes, "node"),
      Plural(spec.gpus_per_node, "GPU"), spec.tensor_parallel,
      protocols::PriorityName(spec.priority), spec.max_restarts,
      spec.time_limit > absl::ZeroDuration() ? sublet::FormatDuration(spec.time_limit)
                                             : std::string("none"));
}

std::string CheckpointSettings(const protocols::JobSpec& spec) {
  const std::string every = spec.checkpoint_every_steps == 0
                                ? std::string("at the trainer's default interval")
                                : "every " + Plural(spec.checkpoint_every_steps, "step");
  return fmt::format("{}, keeping the newest {}", every,
                     Plural(spec.checkpoint_keep, "checkpoint"));
}

// Keys only: values may hold credentials.
std::string EnvKeys(const protocols::JobSpec& spec) {
  std::vector<std::string> keys;
  for (const auto& [key, value] : spec.env) keys.push_back(key);
  return keys.empty() ? "-" : absl::StrJoin(keys, ", ") + " (values not shown)";
}

// Where the job runs now. A pending job runs nowhere: the nodes it carries
// are its last attempt's.
std::string NodesLine(const JobInfo& job) {
  if (job.state != "pending") return JoinOrDash(job.nodes);
  if (job.nodes.empty() || job.attempt == 0) return "- (not placed)";
  return fmt::format("- (not placed; attempt {} ran on {})", job.attempt, JoinOrDash(job.nodes));
}

std::string TimeLine(int64_t unix_ms, absl::Time now) {
  if (unix_ms == 0) return "-";
  return fmt::format("{} ({} ago)", FormatTimestamp(unix_ms), FormatAge(unix_ms, now));
}

struct AttemptStart {
  uint32_t attempt = 0;
  int64_t time_unix_ms = 0;
  std::string where;  // "node-1,node-2 (4 ranks)..." as the event says
};

// Each attempt's start, from the job's "started" events, whose message is
// "attempt N on NODES (...)". Without events (a listing, not `show`), only
// the current attempt's start is known.
std::vector<AttemptStart> AttemptStarts(const JobInfo& job) {
  std::vector<AttemptStart> out;
  for (const auto& event : job.events) {
    if (event.kind != "started") continue;
    AttemptStart start{static_cast<uint32_t>(out.size() + 1), event.time_unix_ms, event.message};
    unsigned number = 0;
    int consumed = 0;
    if (std::sscanf(event.message.c_str(), "attempt %u on %n", &number, &consumed) == 1 &&
        consumed > 0) {
      start.attempt = number;
      start.where = event.message.substr(static_cast<size_t>(consumed));
    }
    out.push_back(std::move(start));
  }
  if (out.empty() && job.start_time_unix_ms != 0) {
    out.push_back({job.attempt, job.start_time_unix_ms, JoinOrDash(job.nodes)});
  }
  return out;
}

std::string AttemptsTable(const std::vector<AttemptStart>& starts, absl::Time now) {
  std::vector<std::vector<std::string>> rows;
  for (const auto& s : starts) {
    rows.push_back({std::to_string(s.attempt), TimeLine(s.time_unix_ms, now), OrDash(s.where)});
  }
  return RenderTable({"ATTEMPT", "STARTED", "ON"}, rows);
}

std::string PlacementTable(const std::vector<protocols::RankPlacement>& ranks) {
  std::vector<std::vector<std::string>> rows;
  for (const auto& rank : ranks) {
    std::vector<std::string> gpus;
    for (uint32_t gpu : rank.gpus) gpus.push_back(std::to_string(gpu));
    rows.push_back({std::to_string(rank.rank), rank.node, std::to_string(rank.local_rank),
                    JoinOrDash(gpus), rank.state,
                    rank.state == "exited" ? std::to_string(rank.exit_code) : "-"});
  }
  return RenderTable({"RANK", "NODE", "LOCAL_RANK", "GPUS", "STATE", "EXIT_CODE"}, rows);
}

std::string EventsTable(const std::vector<protocols::JobEvent>& events) {
  std::vector<std::vector<std::string>> rows;
  for (const auto& event : events) {
    rows.push_back({FormatTimestamp(event.time_unix_ms), event.who, event.kind, event.message});
  }
  return RenderTable({"TIME", "WHO", "KIND", "MESSAGE"}, rows);
}

using Field = std::pair<std::string, std::string>;

// What the tenant asked for.
std::vector<Field> SpecFields(const protocols::JobSpec& spec) {
  std::vector<Field> fields = {
      {"Spec:", SpecSummary(spec)},
      {"Checkpointing:", CheckpointSettings(spec)},
      {"Env:", EnvKeys(spec)},
  };
  if (spec.elastic_min_nodes > 0) {
    fields.push_back({"Elastic:", fmt::format("may run on {} to {}", spec.elastic_min_nodes,
                                              Plural(spec.nodes, "node"))});
  }
  if (spec.progress_timeout > absl::ZeroDuration()) {
    fields.push_back({"Progress timeout:", sublet::FormatDuration(spec.progress_timeout)});
  }
  if (spec.Torchrun()) {
    fields.push_back({"Launcher:", fmt::format("torchrun on each node (--nproc-per-node {})",
                                               spec.gpus_per_node)});
  }
  if (!spec.preemption_signal.empty()) {
    fields.push_back({"Preemption:", "notice by " + spec.preemption_signal});
  }
  if (!spec.depends_on.empty()) {
    std::vector<std::string> deps;
    for (const protocols::Dependency& d : spec.depends_on) {
      deps.push_back(fmt::format("job {} {}", d.job,
                                 d.when == protocols::DependencyWhen::kAny
                                     ? std::string("ended")
                                     : std::string(protocols::DependencyWhenName(d.when))));
    }
    fields.push_back({"Depends on:", absl::StrJoin(deps, ", ")});
  }
  return fields;
}

// Where the job stands.
std::vector<Field> StatusFields(const JobInfo& job, int64_t first_start_ms, absl::Time now) {
  std::vector<Field> fields = {
      {"Attempt:", fmt::format("{} ({}, {})", job.attempt, Plural(job.restarts, "restart"),
                               Plural(job.preemptions, "preemption"))},
      {"Last checkpoint:", job.last_checkpoint_step >= 0
                               ? fmt::format("step {}", job.last_checkpoint_step)
                               : std::string("none")},
      {"GPU-seconds:", fmt::format("{:.1f} used, {:.1f} lost to preemption", job.gpu_seconds,
                                   job.gpu_seconds_lost)},
      {"Progress:",
       job.progress.step < 0
           ? std::string("-")
           : fmt::format("step {}{}{} ({})", job.progress.step,
                         std::isfinite(job.progress.loss)
                             ? fmt::format(", loss {:.4g}", job.progress.loss)
                             : std::string(),  // the rank reported no loss
                         job.progress.tokens_per_s > 0
                             ? fmt::format(", {:.0f} tokens/s", job.progress.tokens_per_s)
                             : std::string(),
                         TimeLine(job.progress.time_unix_ms, now))},
      {"Nodes:", NodesLine(job)},
      {"Submitted:", TimeLine(job.submit_time_unix_ms, now)},
      {"First start:", TimeLine(first_start_ms, now)},
      {"Ended:", TimeLine(job.end_time_unix_ms, now)},
  };
  if (!job.preempt_why.empty()) fields.push_back({"Preempted:", job.preempt_why});
  if (job.resume_step >= 0) {
    fields.push_back({"Resumes:", fmt::format("from step {}", job.resume_step)});
  }
  return fields;
}

// "Label:" padded to the longest label, then the value.
std::string RenderFields(const std::vector<Field>& fields) {
  size_t width = 0;
  for (const auto& [label, value] : fields) width = std::max(width, label.size());
  std::string out;
  for (const auto& [label, value] : fields) {
    out += fmt::format("{:<{}}{}\n", label, width + 2, value);
  }
  return out;
}

}  // namespace

std::string RenderJobDetail(const JobInfo& job, absl::Time now) {
  const std::vector<AttemptStart> starts = AttemptStarts(job);
  std::vector<Field> fields = {{"Job:", fmt::format("{} ({})", job.id, job.name)},
                               {"Tenant:", job.tenant},
                               {"State:", job.state},
                               {"Reason:", OrDash(job.reason)}};
  if (job.array_id != 0) {
    fields.push_back(
        {"Array:", fmt::format("index {} of array job {} ({}, jobs {}-{}; array: {})",
                               job.array_index, job.array_id, Plural(job.array_size, "task"),
                               job.array_id, job.array_id + job.array_size - 1, job.spec.array)});
  }
  for (auto& f : SpecFields(job.spec)) fields.push_back(std::move(f));
  for (auto& f : StatusFields(job, starts.empty() ? 0 : starts.front().time_unix_ms, now)) {
    fields.push_back(std::move(f));
  }
  std::string out = RenderFields(fields);
  out += "\nAttempts:\n";
  out += starts.empty() ? "  (not started)\n" : AttemptsTable(starts, now);
  // A pending job's ranks are its last attempt's, which ended.
  out += job.state == "pending" && !job.ranks.empty()
             ? fmt::format("\nLast placement (attempt {}, ended):\n", job.attempt)
             : std::string("\nPlacement:\n");
  out += job.ranks.empty() ? "  (not placed)\n" : PlacementTable(job.ranks);
  out += "\nEvents:\n";
  out += job.events.empty() ? "  (none)\n" : EventsTable(job.events);
  return out;
}

}  // namespace sublet::client

#include "client/output.h"

#include <fmt/format.h>

#include <algorithm>
#include <string>

#include "absl/strings/str_join.h"
#include "common/duration.h"
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

}  // namespace

json JobToJson(const JobInfo& job, bool detailed) {
  json out = {
      {"id", job.id},
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
  out["progress"] = nullptr;
  if (job.progress.step >= 0) {
    out["progress"] = {{"step", job.progress.step},
                       {"loss", job.progress.loss},
                       {"tokens_per_s", job.progress.tokens_per_s},
                       {"time", TimeOrNull(job.progress.time_unix_ms)}};
  }
  out.update(SpecToJson(job.spec));
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
          {"jobs", node.jobs},
          {"address", node.address},
          {"last_heartbeat", TimeOrNull(node.last_heartbeat_unix_ms)}};
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

std::string RenderJobsTable(const std::vector<JobInfo>& jobs, absl::Time now) {
  std::vector<std::vector<std::string>> rows;
  for (const auto& job : jobs) {
    rows.push_back({job.id, job.name, job.tenant, job.state, JoinOrDash(job.nodes),
                    std::to_string(job.restarts), std::to_string(job.preemptions),
                    FormatAge(job.submit_time_unix_ms, now), OrDash(job.reason)});
  }
  return RenderTable(
      {"ID", "NAME", "TENANT", "STATE", "NODES", "RESTARTS", "PREEMPT", "AGE", "REASON"}, rows);
}

std::string RenderNodesTable(const std::vector<NodeInfo>& nodes, absl::Time now) {
  std::vector<std::vector<std::string>> rows;
  for (const auto& node : nodes) {
    std::string seen = FormatAge(node.last_heartbeat_unix_ms, now);
    if (seen != "-") seen += " ago";
    rows.push_back({node.name, node.state, std::to_string(node.gpus),
                    std::to_string(node.gpus_free), JoinOrDash(node.jobs), OrDash(node.address),
                    seen});
  }
  return RenderTable({"NAME", "STATE", "GPUS", "FREE", "JOBS", "ADDRESS", "LAST-SEEN"}, rows);
}

}  // namespace sublet::client

namespace sublet::client {
namespace {

std::string SpecSummary(const protocols::JobSpec& spec) {
  return fmt::format("{} nodes x {} GPUs, tensor {}, priority {}, max_restarts {}, time_limit {}",
                     spec.nodes, spec.gpus_per_node, spec.tensor_parallel,
                     protocols::PriorityName(spec.priority), spec.max_restarts,
                     spec.time_limit > absl::ZeroDuration()
                         ? sublet::FormatDuration(spec.time_limit)
                         : std::string("none"));
}

std::string TimeLine(int64_t unix_ms, absl::Time now) {
  if (unix_ms == 0) return "-";
  return fmt::format("{} ({} ago)", FormatTimestamp(unix_ms), FormatAge(unix_ms, now));
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

}  // namespace

std::string RenderJobDetail(const JobInfo& job, absl::Time now) {
  const std::string checkpoint = job.last_checkpoint_step >= 0
                                     ? fmt::format("step {}", job.last_checkpoint_step)
                                     : std::string("none");
  std::vector<std::vector<std::string>> fields = {
      {"Job:", fmt::format("{} ({})", job.id, job.name)},
      {"Tenant:", job.tenant},
      {"State:", job.state},
      {"Reason:", OrDash(job.reason)},
      {"Spec:", SpecSummary(job.spec)},
      {"Attempt:",
       fmt::format("{} (restarts {}, preemptions {})", job.attempt, job.restarts, job.preemptions)},
      {"Checkpoint:", checkpoint},
      {"Progress:", job.progress.step < 0
                        ? std::string("-")
                        : fmt::format("step {}, loss {:.4g}, {:.0f} tokens/s ({})",
                                      job.progress.step, job.progress.loss,
                                      job.progress.tokens_per_s,
                                      TimeLine(job.progress.time_unix_ms, now))},
      {"Nodes:", JoinOrDash(job.nodes)},
      {"Submitted:", TimeLine(job.submit_time_unix_ms, now)},
      {"Started:", TimeLine(job.start_time_unix_ms, now)},
      {"Ended:", TimeLine(job.end_time_unix_ms, now)},
  };
  std::string out;
  for (const auto& field : fields) out += fmt::format("{:<12}{}\n", field[0], field[1]);
  out += "\nPlacement:\n";
  out += job.ranks.empty() ? "  (not placed)\n" : PlacementTable(job.ranks);
  out += "\nEvents:\n";
  out += job.events.empty() ? "  (none)\n" : EventsTable(job.events);
  return out;
}

}  // namespace sublet::client

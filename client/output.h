// How the CLI shows jobs and nodes: aligned tables for people, JSON documents
// for programs. Pure functions of their inputs (the current time is passed in)
// so they are tested without a coordinator.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "common/status.h"
#include "protocols/messages.h"

namespace sublet::client {

enum class OutputFormat { kTable, kJson };

// ---- JSON ----------------------------------------------------------------

// A job object: id, name, tenant, state, reason, restarts, preemptions,
// attempt, nodes, last_checkpoint_step (null when none), submit_time,
// start_time, end_time (ISO 8601 UTC or null), the spec's num_nodes,
// gpus_per_node, tensor_parallel, priority, max_restarts, time_limit,
// checkpoint {every_steps, keep}, env_keys (never values), progress_timeout
// and preemption_signal (null when not set), and with `detailed` also ranks
// and events.
nlohmann::json JobToJson(const protocols::JobInfo& job, bool detailed);
// name, state, gpus, gpus_free, jobs, address, last_heartbeat, reclaim_id.
nlohmann::json NodeToJson(const protocols::NodeInfo& node);
// id, who, reason, state, requested nodes/gpus, times, nodes (name, state),
// jobs (job_id, tenant, state, why, checkpoint_step, estimated_save_s),
// warnings.
nlohmann::json ReclaimToJson(const protocols::ReclaimInfo& reclaim);
// Per tenant over `jobs`: [{tenant, jobs, gpu_seconds, gpu_seconds_lost}].
nlohmann::json TenantTotalsToJson(const std::vector<protocols::JobInfo>& jobs);
// time (ISO 8601 UTC), who, action, detail.
nlohmann::json AuditEntryToJson(const protocols::AuditEntry& entry);
// {"error": {"code": "NOT_FOUND", "message": "..."}}
nlohmann::json ErrorToJson(const absl::Status& status);
// One document, two-space indented, newline-terminated; invalid UTF-8 (log
// bytes) is replaced rather than thrown on.
std::string DumpJson(const nlohmann::json& document);

// ---- text ----------------------------------------------------------------

// "2026-11-26T05:40:00.123Z", or "" for 0 (never).
std::string FormatTimestamp(int64_t unix_ms);
// Coarse age for tables: "12s", "5m", "3h", "2d"; "-" for 0 (never).
std::string FormatAge(int64_t unix_ms, absl::Time now);

// Columns padded to their widest cell, two spaces apart, no trailing blanks.
std::string RenderTable(const std::vector<std::string>& header,
                        const std::vector<std::vector<std::string>>& rows);

// ID NAME TENANT STATE NODES RESTARTS PREEMPT AGE REASON (a pending job's
// NODES is "-": it holds none).
// A job's name as tables show it: an array task's with its index, "sweep[3]".
std::string DisplayName(const protocols::JobInfo& job);
std::string RenderJobsTable(const std::vector<protocols::JobInfo>& jobs, absl::Time now);
// NAME STATE GPUS FREE JOBS ADDRESS LAST-SEEN
std::string RenderNodesTable(const std::vector<protocols::NodeInfo>& nodes, absl::Time now);
// `sublet show`: state, spec summary with checkpoint settings, env keys (not
// values), progress_timeout and preemption.signal when set; counters,
// checkpoint, the first start and each attempt's start (from the "started"
// events), placement (for a pending job: its last attempt's, said so), events.
std::string RenderJobDetail(const protocols::JobInfo& job, absl::Time now);
// TIME WHO ACTION DETAIL, oldest first as given.
std::string RenderAuditTable(const std::vector<protocols::AuditEntry>& entries);
// `sublet tenants`: one row per tenant, and the document `-o json` prints.
std::string RenderTenantsTable(const protocols::TenantListReply& reply);
nlohmann::json TenantsToJson(const protocols::TenantListReply& reply);
// ID STATE WHO NODES JOBS DEADLINE AGE REASON
std::string RenderReclaimsTable(const std::vector<protocols::ReclaimInfo>& reclaims,
                                absl::Time now);
// One reclaim's progress: per node and per job, warnings.
std::string RenderReclaimDetail(const protocols::ReclaimInfo& reclaim, absl::Time now);

}  // namespace sublet::client

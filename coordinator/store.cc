#include "coordinator/store.h"

#include <sqlite3.h>

#include "absl/strings/numbers.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "fmt/format.h"
#include "nlohmann/json.hpp"

namespace sublet::coordinator {
namespace {

constexpr const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS jobs (
  id INTEGER PRIMARY KEY,
  tenant TEXT NOT NULL,
  spec TEXT NOT NULL,
  state TEXT NOT NULL,
  reason TEXT NOT NULL,
  restarts INTEGER NOT NULL,
  preemptions INTEGER NOT NULL,
  attempt INTEGER NOT NULL,
  last_checkpoint_step INTEGER NOT NULL,
  submit_ms INTEGER NOT NULL,
  start_ms INTEGER NOT NULL,
  end_ms INTEGER NOT NULL,
  stopping INTEGER NOT NULL,
  master_addr TEXT NOT NULL,
  master_port INTEGER NOT NULL,
  rendezvous_port INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS ranks (
  job_id INTEGER NOT NULL,
  attempt INTEGER NOT NULL,
  rank INTEGER NOT NULL,
  node TEXT NOT NULL,
  incarnation TEXT NOT NULL,
  local_rank INTEGER NOT NULL,
  gpus TEXT NOT NULL,
  exited INTEGER NOT NULL,
  exit_code INTEGER NOT NULL,
  PRIMARY KEY (job_id, attempt, rank));
CREATE TABLE IF NOT EXISTS nodes (
  name TEXT PRIMARY KEY,
  state TEXT NOT NULL,
  gpus INTEGER NOT NULL,
  incarnation TEXT NOT NULL,
  address TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS events (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  job_id INTEGER NOT NULL,
  time_ms INTEGER NOT NULL,
  who TEXT NOT NULL,
  kind TEXT NOT NULL,
  message TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS events_by_job ON events (job_id, seq);
CREATE TABLE IF NOT EXISTS reclaims (
  id INTEGER PRIMARY KEY,
  who TEXT NOT NULL,
  reason TEXT NOT NULL,
  state TEXT NOT NULL,
  requested_nodes TEXT NOT NULL,
  requested_gpus INTEGER NOT NULL,
  created_ms INTEGER NOT NULL,
  deadline_ms INTEGER NOT NULL,
  reclaimed_ms INTEGER NOT NULL,
  released_ms INTEGER NOT NULL,
  nodes TEXT NOT NULL,
  victims TEXT NOT NULL,
  warnings TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS tenant_numbers (
  name TEXT PRIMARY KEY,
  number INTEGER NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS audit (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  time_ms INTEGER NOT NULL,
  who TEXT NOT NULL,
  action TEXT NOT NULL,
  detail TEXT NOT NULL);
)sql";

// Columns added after the first release, appended to old databases (Load
// names every column it reads, so their position does not matter).
struct AddedColumn {
  const char* table;
  const char* name;
  const char* decl;
};
constexpr AddedColumn kAddedColumns[] = {
    {"jobs", "reclaim_id", "INTEGER NOT NULL DEFAULT 0"},
    {"jobs", "preempt_deadline_ms", "INTEGER NOT NULL DEFAULT 0"},
    {"jobs", "preempt_why", "TEXT NOT NULL DEFAULT ''"},
    {"jobs", "resume_step", "INTEGER NOT NULL DEFAULT -1"},
    {"jobs", "checkpoint_ms", "INTEGER NOT NULL DEFAULT 0"},
    {"jobs", "checkpoint_bytes", "INTEGER NOT NULL DEFAULT 0"},
    {"jobs", "checkpoint_persist_s", "REAL NOT NULL DEFAULT 0"},
    {"jobs", "gpu_seconds", "REAL NOT NULL DEFAULT 0"},
    {"jobs", "gpu_seconds_lost", "REAL NOT NULL DEFAULT 0"},
    {"jobs", "not_before_ms", "INTEGER NOT NULL DEFAULT 0"},
    {"jobs", "array_id", "INTEGER NOT NULL DEFAULT 0"},
    {"jobs", "array_index", "INTEGER NOT NULL DEFAULT 0"},
    {"jobs", "fairness_for", "INTEGER NOT NULL DEFAULT 0"},
    {"jobs", "attempt_borrowed_gpus", "INTEGER NOT NULL DEFAULT 0"},
    {"jobs", "gpu_seconds_borrowed", "REAL NOT NULL DEFAULT 0"},
    {"nodes", "reclaim_id", "INTEGER NOT NULL DEFAULT 0"},
    {"nodes", "instance", "TEXT NOT NULL DEFAULT ''"},
};

int64_t ToMs(absl::Time t) { return t == absl::InfinitePast() ? 0 : absl::ToUnixMillis(t); }
absl::Time FromMs(int64_t ms) { return ms == 0 ? absl::InfinitePast() : absl::FromUnixMillis(ms); }

std::string Text(sqlite3_stmt* s, int col) {
  const unsigned char* p = sqlite3_column_text(s, col);
  return p ? std::string(reinterpret_cast<const char*>(p)) : std::string();
}

void BindText(sqlite3_stmt* s, int i, const std::string& v) {
  sqlite3_bind_text(s, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
}

std::string JoinGpus(const std::vector<uint32_t>& gpus) { return absl::StrJoin(gpus, ","); }

std::vector<uint32_t> SplitGpus(const std::string& text) {
  std::vector<uint32_t> out;
  for (absl::string_view part : absl::StrSplit(text, ',', absl::SkipEmpty())) {
    uint32_t gpu = 0;
    if (absl::SimpleAtoi(part, &gpu)) out.push_back(gpu);
  }
  return out;
}

// Resets a cached statement when it goes out of scope, whatever happened.
struct StmtReset {
  sqlite3_stmt* s;
  ~StmtReset() {
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
  }
};

}  // namespace

absl::StatusOr<std::unique_ptr<Store>> Store::Open(const std::string& path) {
  sqlite3* db = nullptr;
  int rc = sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, nullptr);
  if (rc != SQLITE_OK) {
    std::string msg = db ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
    sqlite3_close(db);
    return absl::UnavailableError(fmt::format("cannot open store {}: {}", path, msg));
  }
  std::unique_ptr<Store> store(new Store(db));
  SUBLET_RETURN_IF_ERROR(store->Exec("PRAGMA journal_mode=WAL"));
  SUBLET_RETURN_IF_ERROR(store->Exec("PRAGMA synchronous=FULL"));
  SUBLET_RETURN_IF_ERROR(store->Exec("PRAGMA busy_timeout=5000"));
  SUBLET_RETURN_IF_ERROR(store->Exec(kSchema));
  SUBLET_RETURN_IF_ERROR(store->AddColumns());
  SUBLET_ASSIGN_OR_RETURN(store->insert_job_, store->Prepare(
      "INSERT INTO jobs (id, tenant, spec, state, reason, restarts, preemptions, attempt, "
      "last_checkpoint_step, submit_ms, start_ms, end_ms, stopping, master_addr, master_port, "
      "rendezvous_port, array_id, array_index) "
      "VALUES (?1,?2,?3,'pending','',0,0,0,-1,0,0,0,0,'',0,0,?4,?5)"));
  SUBLET_ASSIGN_OR_RETURN(store->update_job_, store->Prepare(
      "UPDATE jobs SET state=?2, reason=?3, restarts=?4, preemptions=?5, attempt=?6, "
      "last_checkpoint_step=?7, submit_ms=?8, start_ms=?9, end_ms=?10, stopping=?11, "
      "master_addr=?12, master_port=?13, rendezvous_port=?14, reclaim_id=?15, "
      "preempt_deadline_ms=?16, preempt_why=?17, resume_step=?18, checkpoint_ms=?19, "
      "checkpoint_bytes=?20, checkpoint_persist_s=?21, gpu_seconds=?22, gpu_seconds_lost=?23, "
      "not_before_ms=?24, fairness_for=?25, attempt_borrowed_gpus=?26, "
      "gpu_seconds_borrowed=?27 WHERE id=?1"));
  SUBLET_ASSIGN_OR_RETURN(store->put_rank_, store->Prepare(
      "INSERT OR REPLACE INTO ranks (job_id, attempt, rank, node, incarnation, local_rank, gpus, "
      "exited, exit_code) VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9)"));
  SUBLET_ASSIGN_OR_RETURN(store->put_node_, store->Prepare(
      "INSERT OR REPLACE INTO nodes (name, state, gpus, incarnation, address, reclaim_id, "
      "instance) VALUES (?1,?2,?3,?4,?5,?6,?7)"));
  SUBLET_ASSIGN_OR_RETURN(store->put_reclaim_, store->Prepare(
      "INSERT OR REPLACE INTO reclaims (id, who, reason, state, requested_nodes, requested_gpus, "
      "created_ms, deadline_ms, reclaimed_ms, released_ms, nodes, victims, warnings) "
      "VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13)"));
  SUBLET_ASSIGN_OR_RETURN(store->put_audit_, store->Prepare(
      "INSERT INTO audit (time_ms, who, action, detail) VALUES (?1,?2,?3,?4)"));
  SUBLET_ASSIGN_OR_RETURN(store->put_event_, store->Prepare(
      "INSERT INTO events (job_id, time_ms, who, kind, message) VALUES (?1,?2,?3,?4,?5)"));
  return store;
}

Store::~Store() {
  for (sqlite3_stmt* s : cached_) sqlite3_finalize(s);
  sqlite3_close(db_);
}

absl::Status Store::Error(const char* what) {
  return Fail(absl::InternalError(fmt::format("store: {}: {}", what, sqlite3_errmsg(db_))));
}

absl::Status Store::Fail(absl::Status status) {
  if (failure_.ok()) failure_ = status;
  return status;
}

absl::Status Store::Exec(const char* sql) {
  char* err = nullptr;
  if (sqlite3_exec(db_, sql, nullptr, nullptr, &err) != SQLITE_OK) {
    std::string msg = err ? err : "unknown error";
    sqlite3_free(err);
    return Fail(absl::InternalError(fmt::format("store: {}", msg)));
  }
  return absl::OkStatus();
}

absl::Status Store::Write(sqlite3_stmt* s, const char* what) {
  ++writes_;
  if (fail_write_in_ > 0 && --fail_write_in_ == 0) {
    return Fail(absl::InternalError(fmt::format("store: {}: injected failure", what)));
  }
  if (sqlite3_step(s) != SQLITE_DONE) return Error(what);
  return absl::OkStatus();
}

absl::StatusOr<Store::Statement> Store::PrepareOnce(const char* sql, const char* what) {
  sqlite3_stmt* s = nullptr;
  if (sqlite3_prepare_v2(db_, sql, -1, &s, nullptr) != SQLITE_OK) return Error(what);
  return Statement(s, sqlite3_finalize);
}

absl::StatusOr<sqlite3_stmt*> Store::Prepare(const char* sql) {
  SUBLET_ASSIGN_OR_RETURN(Statement s, PrepareOnce(sql, "prepare"));
  cached_.push_back(s.release());
  return cached_.back();
}

absl::Status Store::AddColumns() {
  for (const AddedColumn& c : kAddedColumns) {
    std::string probe = fmt::format("SELECT 1 FROM pragma_table_info('{}') WHERE name='{}'",
                                    c.table, c.name);
    SUBLET_ASSIGN_OR_RETURN(Statement s, PrepareOnce(probe.c_str(), "prepare schema probe"));
    int rc = sqlite3_step(s.get());
    if (rc == SQLITE_ROW) continue;
    if (rc != SQLITE_DONE) return Error("schema probe");
    std::string alter = fmt::format("ALTER TABLE {} ADD COLUMN {} {}", c.table, c.name, c.decl);
    SUBLET_RETURN_IF_ERROR(Exec(alter.c_str()));
  }
  return absl::OkStatus();
}

absl::Status Store::Begin() {
  failure_ = absl::OkStatus();
  return Exec("BEGIN IMMEDIATE");
}

absl::Status Store::Commit() {
  if (!failure_.ok()) return failure_;
  return Exec("COMMIT");
}

void Store::Rollback() {
  (void)Exec("ROLLBACK");
  failure_ = absl::OkStatus();
}

absl::Status Store::Savepoint() { return Exec("SAVEPOINT request"); }
absl::Status Store::ReleaseSavepoint() { return Exec("RELEASE request"); }
absl::Status Store::RollbackToSavepoint() {
  SUBLET_RETURN_IF_ERROR(Exec("ROLLBACK TO request"));
  return Exec("RELEASE request");
}

absl::Status Store::InsertJob(const Job& job) {
  sqlite3_stmt* s = insert_job_;
  StmtReset reset{s};
  sqlite3_bind_int64(s, 1, static_cast<int64_t>(job.id));
  BindText(s, 2, job.tenant);
  BindText(s, 3, protocols::JobSpecToYaml(job.spec));
  sqlite3_bind_int64(s, 4, static_cast<int64_t>(job.array_id));
  sqlite3_bind_int64(s, 5, job.array_index);
  SUBLET_RETURN_IF_ERROR(Write(s, "insert job"));
  return SaveJob(job);
}

// The spec never changes after submission, so updates leave it alone (its
// YAML rendering is the most expensive part of a row).
absl::Status Store::SaveJob(const Job& job) {
  sqlite3_stmt* s = update_job_;
  StmtReset reset{s};
  sqlite3_bind_int64(s, 1, static_cast<int64_t>(job.id));
  BindText(s, 2, std::string(JobStateName(job.state)));
  BindText(s, 3, job.reason);
  sqlite3_bind_int64(s, 4, job.restarts);
  sqlite3_bind_int64(s, 5, job.preemptions);
  sqlite3_bind_int64(s, 6, job.attempt);
  sqlite3_bind_int64(s, 7, job.last_checkpoint_step);
  sqlite3_bind_int64(s, 8, ToMs(job.submit_time));
  sqlite3_bind_int64(s, 9, ToMs(job.start_time));
  sqlite3_bind_int64(s, 10, ToMs(job.end_time));
  sqlite3_bind_int(s, 11, job.stopping ? 1 : 0);
  BindText(s, 12, job.master_addr);
  sqlite3_bind_int64(s, 13, job.master_port);
  sqlite3_bind_int64(s, 14, job.rendezvous_port);
  sqlite3_bind_int64(s, 15, static_cast<int64_t>(job.reclaim_id));
  sqlite3_bind_int64(s, 16, ToMs(job.preempt_deadline));
  BindText(s, 17, job.preempt_why);
  sqlite3_bind_int64(s, 18, job.resume_step);
  sqlite3_bind_int64(s, 19, ToMs(job.last_checkpoint_time));
  sqlite3_bind_int64(s, 20, job.checkpoint_bytes);
  sqlite3_bind_double(s, 21, job.checkpoint_persist_s);
  sqlite3_bind_double(s, 22, job.gpu_seconds);
  sqlite3_bind_double(s, 23, job.gpu_seconds_lost);
  sqlite3_bind_int64(s, 24, ToMs(job.not_before));
  sqlite3_bind_int64(s, 25, static_cast<int64_t>(job.fairness_for));
  sqlite3_bind_int64(s, 26, job.attempt_borrowed_gpus);
  sqlite3_bind_double(s, 27, job.gpu_seconds_borrowed);
  SUBLET_RETURN_IF_ERROR(Write(s, "save job"));
  if (sqlite3_changes(db_) != 1) {
    return Fail(absl::InternalError(fmt::format("store: job {} was never inserted", job.id)));
  }
  return SaveRanks(job);
}

absl::Status Store::SaveRanks(const Job& job) {
  sqlite3_stmt* s = put_rank_;
  for (const RankRecord& r : job.ranks) {
    StmtReset reset{s};
    sqlite3_bind_int64(s, 1, static_cast<int64_t>(job.id));
    sqlite3_bind_int64(s, 2, job.attempt);
    sqlite3_bind_int64(s, 3, r.rank);
    BindText(s, 4, r.node);
    BindText(s, 5, r.incarnation);
    sqlite3_bind_int64(s, 6, r.local_rank);
    BindText(s, 7, JoinGpus(r.gpus));
    sqlite3_bind_int(s, 8, r.exited ? 1 : 0);
    sqlite3_bind_int(s, 9, r.exit_code);
    SUBLET_RETURN_IF_ERROR(Write(s, "save rank"));
  }
  return absl::OkStatus();
}

absl::Status Store::SaveNode(const Node& node) {
  sqlite3_stmt* s = put_node_;
  StmtReset reset{s};
  BindText(s, 1, node.name);
  BindText(s, 2, std::string(NodeStateName(node.state)));
  sqlite3_bind_int64(s, 3, static_cast<int64_t>(node.gpus.size()));
  BindText(s, 4, node.incarnation);
  BindText(s, 5, node.address);
  sqlite3_bind_int64(s, 6, static_cast<int64_t>(node.reclaim_id));
  BindText(s, 7, node.instance);
  SUBLET_RETURN_IF_ERROR(Write(s, "save node"));
  return absl::OkStatus();
}

absl::Status Store::SaveReclaim(const Reclaim& r) {
  sqlite3_stmt* s = put_reclaim_;
  StmtReset reset{s};
  sqlite3_bind_int64(s, 1, static_cast<int64_t>(r.id));
  BindText(s, 2, r.who);
  BindText(s, 3, r.reason);
  BindText(s, 4, std::string(ReclaimStateName(r.state)));
  BindText(s, 5, absl::StrJoin(r.requested_nodes, ","));
  sqlite3_bind_int64(s, 6, r.requested_gpus);
  sqlite3_bind_int64(s, 7, ToMs(r.created));
  sqlite3_bind_int64(s, 8, ToMs(r.deadline));
  sqlite3_bind_int64(s, 9, ToMs(r.reclaimed_time));
  sqlite3_bind_int64(s, 10, ToMs(r.released_time));
  BindText(s, 11, absl::StrJoin(r.nodes, ","));
  nlohmann::json victims = nlohmann::json::array();
  for (const ReclaimVictim& v : r.victims) {
    victims.push_back({{"job", v.job_id}, {"tenant", v.tenant}, {"state", VictimStateName(v.state)},
                       {"why", v.why}, {"step", v.checkpoint_step},
                       {"save_s", v.estimated_save_s}});
  }
  BindText(s, 12, victims.dump());
  BindText(s, 13, nlohmann::json(r.warnings).dump());
  SUBLET_RETURN_IF_ERROR(Write(s, "save reclaim"));
  return absl::OkStatus();
}

absl::Status Store::AppendAudit(const AuditEntry& entry) {
  sqlite3_stmt* s = put_audit_;
  StmtReset reset{s};
  sqlite3_bind_int64(s, 1, entry.time_unix_ms);
  BindText(s, 2, entry.who);
  BindText(s, 3, entry.action);
  BindText(s, 4, entry.detail);
  SUBLET_RETURN_IF_ERROR(Write(s, "append audit"));
  return absl::OkStatus();
}

absl::StatusOr<std::map<std::string, uint32_t>> Store::NumberTenants(
    const std::vector<std::string>& tenants) {
  std::map<std::string, uint32_t> numbers;
  uint32_t highest = 0;
  {
    SUBLET_ASSIGN_OR_RETURN(
        Statement owned,
        PrepareOnce("SELECT name, number FROM tenant_numbers", "prepare tenant numbers"));
    sqlite3_stmt* s = owned.get();
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
      const int64_t number = sqlite3_column_int64(s, 1);
      if (number < 1 || number > UINT32_MAX) {
        return absl::DataLossError(fmt::format("store: tenant {} has number {}", Text(s, 0), number));
      }
      numbers[Text(s, 0)] = static_cast<uint32_t>(number);
      highest = std::max(highest, static_cast<uint32_t>(number));
    }
    if (rc != SQLITE_DONE) return Error("load tenant numbers");
  }
  for (const std::string& tenant : tenants) {
    if (numbers.count(tenant)) continue;
    SUBLET_ASSIGN_OR_RETURN(
        Statement owned,
        PrepareOnce("INSERT INTO tenant_numbers (name, number) VALUES (?, ?)",
                    "prepare tenant number"));
    sqlite3_stmt* s = owned.get();
    BindText(s, 1, tenant);
    sqlite3_bind_int64(s, 2, ++highest);
    SUBLET_RETURN_IF_ERROR(Write(s, "number a tenant"));
    numbers[tenant] = highest;
  }
  return numbers;
}

absl::StatusOr<std::vector<Store::AuditEntry>> Store::Audit(int64_t since_unix_ms, size_t limit) {
  SUBLET_ASSIGN_OR_RETURN(
      Statement owned,
      PrepareOnce("SELECT time_ms, who, action, detail FROM ("
                  "  SELECT seq, time_ms, who, action, detail FROM audit WHERE time_ms >= ?1"
                  "  ORDER BY seq DESC LIMIT ?2) ORDER BY seq",
                  "prepare audit"));
  sqlite3_stmt* s = owned.get();
  sqlite3_bind_int64(s, 1, since_unix_ms);
  sqlite3_bind_int64(s, 2, limit == 0 ? -1 : static_cast<int64_t>(limit));  // -1: no limit
  std::vector<AuditEntry> out;
  int rc;
  while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
    out.push_back({sqlite3_column_int64(s, 0), Text(s, 1), Text(s, 2), Text(s, 3)});
  }
  if (rc != SQLITE_DONE) return Error("load audit");
  return out;
}

absl::Status Store::AppendEvent(uint64_t job_id, const protocols::JobEvent& event) {
  sqlite3_stmt* s = put_event_;
  StmtReset reset{s};
  sqlite3_bind_int64(s, 1, static_cast<int64_t>(job_id));
  sqlite3_bind_int64(s, 2, event.time_unix_ms);
  BindText(s, 3, event.who);
  BindText(s, 4, event.kind);
  BindText(s, 5, event.message);
  SUBLET_RETURN_IF_ERROR(Write(s, "append event"));
  return absl::OkStatus();
}

absl::StatusOr<Store::Snapshot> Store::Load() {
  Snapshot snap;
  SUBLET_ASSIGN_OR_RETURN(Statement owned_jobs, PrepareOnce(
      "SELECT id, tenant, spec, state, reason, restarts, preemptions, attempt, "
      "last_checkpoint_step, submit_ms, start_ms, end_ms, stopping, master_addr, master_port, "
      "rendezvous_port, reclaim_id, preempt_deadline_ms, preempt_why, resume_step, "
      "checkpoint_ms, checkpoint_bytes, checkpoint_persist_s, gpu_seconds, gpu_seconds_lost, "
      "not_before_ms, array_id, array_index, fairness_for, attempt_borrowed_gpus, "
      "gpu_seconds_borrowed FROM jobs ORDER BY id", "prepare jobs"));
  sqlite3_stmt* jobs = owned_jobs.get();
  int rc;
  while ((rc = sqlite3_step(jobs)) == SQLITE_ROW) {
    Job job;
    job.id = static_cast<uint64_t>(sqlite3_column_int64(jobs, 0));
    job.tenant = Text(jobs, 1);
    auto spec = protocols::ParseJobSpecYaml(Text(jobs, 2));
    std::optional<JobState> state = JobStateFromName(Text(jobs, 3));
    if (!spec.ok() || !state) {
      return absl::DataLossError(fmt::format(
          "store: job {} cannot be read back ({})", job.id,
          spec.ok() ? "unknown state " + Text(jobs, 3) : std::string(spec.status().message())));
    }
    job.spec = *std::move(spec);
    job.state = *state;
    job.reason = Text(jobs, 4);
    job.restarts = static_cast<uint32_t>(sqlite3_column_int64(jobs, 5));
    job.preemptions = static_cast<uint32_t>(sqlite3_column_int64(jobs, 6));
    job.attempt = static_cast<uint32_t>(sqlite3_column_int64(jobs, 7));
    job.last_checkpoint_step = sqlite3_column_int64(jobs, 8);
    job.submit_time = FromMs(sqlite3_column_int64(jobs, 9));
    job.start_time = FromMs(sqlite3_column_int64(jobs, 10));
    job.end_time = FromMs(sqlite3_column_int64(jobs, 11));
    job.stopping = sqlite3_column_int(jobs, 12) != 0;
    job.master_addr = Text(jobs, 13);
    job.master_port = static_cast<uint32_t>(sqlite3_column_int64(jobs, 14));
    job.rendezvous_port = static_cast<uint32_t>(sqlite3_column_int64(jobs, 15));
    job.reclaim_id = static_cast<uint64_t>(sqlite3_column_int64(jobs, 16));
    job.preempt_deadline = FromMs(sqlite3_column_int64(jobs, 17));
    job.preempt_why = Text(jobs, 18);
    job.resume_step = sqlite3_column_int64(jobs, 19);
    job.last_checkpoint_time = FromMs(sqlite3_column_int64(jobs, 20));
    job.checkpoint_bytes = sqlite3_column_int64(jobs, 21);
    job.checkpoint_persist_s = sqlite3_column_double(jobs, 22);
    job.gpu_seconds = sqlite3_column_double(jobs, 23);
    job.gpu_seconds_lost = sqlite3_column_double(jobs, 24);
    job.not_before = FromMs(sqlite3_column_int64(jobs, 25));
    job.array_id = static_cast<uint64_t>(sqlite3_column_int64(jobs, 26));
    job.array_index = static_cast<uint32_t>(sqlite3_column_int64(jobs, 27));
    job.fairness_for = static_cast<uint64_t>(sqlite3_column_int64(jobs, 28));
    job.attempt_borrowed_gpus = static_cast<uint32_t>(sqlite3_column_int64(jobs, 29));
    job.gpu_seconds_borrowed = sqlite3_column_double(jobs, 30);
    if (absl::Status shape = SetArrayShape(job); !shape.ok()) {
      return absl::DataLossError(fmt::format("store: job {} cannot be read back ({})", job.id,
                                             std::string(shape.message())));
    }
    snap.max_job_id = std::max(snap.max_job_id, job.id);
    snap.jobs.push_back(std::move(job));
  }
  if (rc != SQLITE_DONE) return Error("load jobs");
  SUBLET_RETURN_IF_ERROR(LoadRanks(snap.jobs));

  SUBLET_ASSIGN_OR_RETURN(Statement owned_nodes, PrepareOnce(
      "SELECT name, state, gpus, incarnation, address, reclaim_id, instance FROM nodes "
      "ORDER BY name",
      "prepare nodes"));
  sqlite3_stmt* nodes = owned_nodes.get();
  while ((rc = sqlite3_step(nodes)) == SQLITE_ROW) {
    Node node;
    node.name = Text(nodes, 0);
    std::optional<NodeState> state = NodeStateFromName(Text(nodes, 1));
    if (!state) {
      return absl::DataLossError(fmt::format("store: node {} cannot be read back (unknown state {})",
                                             node.name, Text(nodes, 1)));
    }
    node.state = *state;
    int64_t gpus = sqlite3_column_int64(nodes, 2);
    for (int64_t i = 0; i < gpus; ++i) node.gpus.push_back({static_cast<uint32_t>(i), "", 0});
    node.incarnation = Text(nodes, 3);
    node.address = Text(nodes, 4);
    node.reclaim_id = static_cast<uint64_t>(sqlite3_column_int64(nodes, 5));
    node.instance = Text(nodes, 6);
    snap.nodes.push_back(std::move(node));
  }
  if (rc != SQLITE_DONE) return Error("load nodes");
  SUBLET_RETURN_IF_ERROR(LoadReclaims(snap));
  return snap;
}

absl::Status Store::LoadReclaims(Snapshot& snap) {
  SUBLET_ASSIGN_OR_RETURN(Statement owned, PrepareOnce(
      "SELECT id, who, reason, state, requested_nodes, requested_gpus, created_ms, deadline_ms, "
      "reclaimed_ms, released_ms, nodes, victims, warnings FROM reclaims ORDER BY id",
      "prepare reclaims"));
  sqlite3_stmt* s = owned.get();
  int rc;
  while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
    Reclaim r;
    r.id = static_cast<uint64_t>(sqlite3_column_int64(s, 0));
    r.who = Text(s, 1);
    r.reason = Text(s, 2);
    std::optional<ReclaimState> state = ReclaimStateFromName(Text(s, 3));
    if (!state) {
      return absl::DataLossError(fmt::format(
          "store: reclaim {} cannot be read back (unknown state {})", r.id, Text(s, 3)));
    }
    r.state = *state;
    r.requested_nodes = absl::StrSplit(Text(s, 4), ',', absl::SkipEmpty());
    r.requested_gpus = static_cast<uint32_t>(sqlite3_column_int64(s, 5));
    r.created = FromMs(sqlite3_column_int64(s, 6));
    r.deadline = FromMs(sqlite3_column_int64(s, 7));
    r.reclaimed_time = FromMs(sqlite3_column_int64(s, 8));
    r.released_time = FromMs(sqlite3_column_int64(s, 9));
    r.nodes = absl::StrSplit(Text(s, 10), ',', absl::SkipEmpty());
    nlohmann::json victims = nlohmann::json::parse(Text(s, 11), nullptr, false);
    nlohmann::json warnings = nlohmann::json::parse(Text(s, 12), nullptr, false);
    if (!victims.is_array() || !warnings.is_array()) {
      return absl::DataLossError(fmt::format("store: reclaim {} cannot be read back", r.id));
    }
    try {
      for (const nlohmann::json& v : victims) {
        const std::string name = v.at("state").get<std::string>();
        std::optional<VictimState> state = VictimStateFromName(name);
        if (!state) {
          return absl::DataLossError(fmt::format(
              "store: reclaim {} cannot be read back (victim in unknown state {})", r.id, name));
        }
        r.victims.push_back({v.at("job").get<uint64_t>(), v.at("tenant").get<std::string>(),
                             *state, v.at("why").get<std::string>(), v.at("step").get<int64_t>(),
                             v.at("save_s").get<double>()});
      }
      r.warnings = warnings.get<std::vector<std::string>>();
    } catch (const nlohmann::json::exception& e) {
      return absl::DataLossError(
          fmt::format("store: reclaim {} cannot be read back ({})", r.id, e.what()));
    }
    snap.max_reclaim_id = std::max(snap.max_reclaim_id, r.id);
    snap.reclaims.push_back(std::move(r));
  }
  if (rc != SQLITE_DONE) return Error("load reclaims");
  return absl::OkStatus();
}

absl::Status Store::LoadRanks(std::vector<Job>& jobs) {
  // Only live jobs need their placement in memory; older attempts stay on disk.
  for (Job& job : jobs) {
    if (job.attempt == 0) continue;
    if (IsFinal(job.state) && !job.stopping) continue;
    SUBLET_ASSIGN_OR_RETURN(job.ranks, Ranks(job.id, job.attempt));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<RankRecord>> Store::Ranks(uint64_t job_id, uint32_t attempt) {
  SUBLET_ASSIGN_OR_RETURN(Statement owned,
                          PrepareOnce("SELECT rank, node, incarnation, local_rank, gpus, exited, "
                                      "exit_code FROM ranks WHERE job_id=?1 AND attempt=?2 "
                                      "ORDER BY rank",
                                      "prepare ranks"));
  sqlite3_stmt* s = owned.get();
  sqlite3_bind_int64(s, 1, static_cast<int64_t>(job_id));
  sqlite3_bind_int64(s, 2, attempt);
  std::vector<RankRecord> out;
  int rc;
  while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
    RankRecord r;
    r.rank = static_cast<uint32_t>(sqlite3_column_int64(s, 0));
    r.node = Text(s, 1);
    r.incarnation = Text(s, 2);
    r.local_rank = static_cast<uint32_t>(sqlite3_column_int64(s, 3));
    r.gpus = SplitGpus(Text(s, 4));
    r.exited = sqlite3_column_int(s, 5) != 0;
    r.exit_code = sqlite3_column_int(s, 6);
    out.push_back(std::move(r));
  }
  if (rc != SQLITE_DONE) return Error("load ranks");
  return out;
}

absl::StatusOr<std::vector<protocols::JobEvent>> Store::Events(uint64_t job_id) {
  SUBLET_ASSIGN_OR_RETURN(Statement owned,
                          PrepareOnce("SELECT time_ms, who, kind, message FROM events WHERE "
                                      "job_id=?1 ORDER BY seq",
                                      "prepare events"));
  sqlite3_stmt* s = owned.get();
  sqlite3_bind_int64(s, 1, static_cast<int64_t>(job_id));
  std::vector<protocols::JobEvent> out;
  int rc;
  while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
    out.push_back({sqlite3_column_int64(s, 0), Text(s, 2), Text(s, 1), Text(s, 3)});
  }
  if (rc != SQLITE_DONE) return Error("load events");
  return out;
}

}  // namespace sublet::coordinator

// Durable coordinator state in SQLite (WAL, synchronous=FULL): jobs, the rank
// placement of every attempt, nodes and job events.
//
// Contract: the event loop wraps each batch of work in Begin()/Commit() and
// sends nothing (no reply, no launch) until Commit() returned OK, so a
// `kill -9` at any moment loses nothing a caller or worker was told. Several
// requests share one transaction (group commit), which is what makes a
// thousand durable submissions a second possible on one fsync-bound disk.
//
// Errors: a failed read or write is Internal ("store: ..."), and recorded as
// the transaction's failure (failure()).
//
// Thread-compatible: one thread (the event loop) uses a Store.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "common/status.h"
#include "coordinator/model.h"

struct sqlite3;
struct sqlite3_stmt;

namespace sublet::coordinator {

class Store {
 public:
  // Opens or creates the database at `path` (":memory:" for tests).
  static absl::StatusOr<std::unique_ptr<Store>> Open(const std::string& path);
  ~Store();
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  // One transaction per event-loop turn. The store remembers the first
  // failure since Begin (a failed write, read or savepoint): Commit then
  // refuses and returns it, so the caller rolls back on that fact alone and
  // never has to guess from an error code whether the store failed.
  absl::Status Begin();
  absl::Status Commit();
  void Rollback();
  const absl::Status& failure() const { return failure_; }
  // One request inside the transaction: RollbackToSavepoint undoes every
  // write since Savepoint (and ends it), ReleaseSavepoint keeps them.
  absl::Status Savepoint();
  absl::Status ReleaseSavepoint();
  absl::Status RollbackToSavepoint();

  // Test seam: the `n`th write from now (1: the next) fails with Internal, as
  // a full disk would. 0 disarms it.
  void TEST_FailWrite(int n) { fail_write_in_ = n; }
  // Writes stepped (or failed) since the store was opened.
  uint64_t TEST_writes() const { return writes_; }

  absl::Status InsertJob(const Job& job);  // a new job, with its spec
  absl::Status SaveJob(const Job& job);    // the job's state and its current attempt's ranks
  absl::Status SaveNode(const Node& node);
  absl::Status AppendEvent(uint64_t job_id, const protocols::JobEvent& event);
  absl::Status SaveReclaim(const Reclaim& reclaim);

  // Who asked for what, for admin actions (reclaim, release), refusals included.
  struct AuditEntry {
    int64_t time_unix_ms = 0;
    std::string who;
    std::string action;
    std::string detail;
  };
  absl::Status AppendAudit(const AuditEntry& entry);

  // Every tenant's number, which nodes turn into the uid its ranks run as
  // (worker/sandboxes.h): each of `tenants` without one gets the next free
  // number (1, 2, ...); a number, once given, is never given to another
  // tenant, even after its tenant left the config. Returns all of them.
  absl::StatusOr<std::map<std::string, uint32_t>> NumberTenants(
      const std::vector<std::string>& tenants);
  // The audit log, oldest first: the newest `limit` entries (0: every one)
  // written at or after `since_unix_ms`.
  absl::StatusOr<std::vector<AuditEntry>> Audit(int64_t since_unix_ms = 0, size_t limit = 0);

  struct Snapshot {
    std::vector<Job> jobs;  // with the ranks of each job's current attempt
    std::vector<Node> nodes;
    std::vector<Reclaim> reclaims;
    uint64_t max_job_id = 0;
    uint64_t max_reclaim_id = 0;
  };
  // Everything, as last committed. A row that no longer parses is DataLoss
  // naming the row: the coordinator refuses to start on a damaged store
  // rather than silently dropping jobs.
  absl::StatusOr<Snapshot> Load();

  absl::StatusOr<std::vector<protocols::JobEvent>> Events(uint64_t job_id);
  absl::StatusOr<std::vector<RankRecord>> Ranks(uint64_t job_id, uint32_t attempt);

 private:
  using Statement = std::unique_ptr<sqlite3_stmt, int (*)(sqlite3_stmt*)>;

  explicit Store(sqlite3* db) : db_(db) {}
  absl::Status Exec(const char* sql);
  // Steps a write statement; every write goes through here.
  absl::Status Write(sqlite3_stmt* s, const char* what);
  // Records `status` as the transaction's failure if it is the first.
  absl::Status Fail(absl::Status status);
  // A statement for one use, finalized with its holder; Prepare caches one
  // for the store's lifetime. Failures are Error(what).
  absl::StatusOr<Statement> PrepareOnce(const char* sql, const char* what);
  absl::Status AddColumns();
  absl::Status LoadReclaims(Snapshot& snap);
  absl::StatusOr<sqlite3_stmt*> Prepare(const char* sql);
  absl::Status Error(const char* what);
  absl::Status SaveRanks(const Job& job);
  absl::Status LoadRanks(std::vector<Job>& jobs);

  sqlite3* db_;
  std::vector<sqlite3_stmt*> cached_;  // finalized in the destructor
  sqlite3_stmt* insert_job_ = nullptr;
  sqlite3_stmt* update_job_ = nullptr;
  sqlite3_stmt* put_rank_ = nullptr;
  sqlite3_stmt* put_node_ = nullptr;
  sqlite3_stmt* put_event_ = nullptr;
  sqlite3_stmt* put_reclaim_ = nullptr;
  sqlite3_stmt* put_audit_ = nullptr;
  absl::Status failure_;
  int fail_write_in_ = 0;
  uint64_t writes_ = 0;
};

}  // namespace sublet::coordinator

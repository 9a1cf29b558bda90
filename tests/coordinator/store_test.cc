#include "coordinator/store.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sqlite3.h>

#include <filesystem>

namespace sublet::coordinator {
namespace {

using ::testing::HasSubstr;
using ::testing::SizeIs;

class StoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = ::testing::TempDir() + "/store_test_" +
           ::testing::UnitTest::GetInstance()->current_test_info()->name();
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    path_ = dir_ + "/state.db";
  }

  Job SampleJob(uint64_t id) {
    Job job;
    job.id = id;
    job.tenant = "acme";
    job.spec.name = "j" + std::to_string(id);
    job.spec.nodes = 1;
    job.spec.gpus_per_node = 2;
    job.spec.command = {"sh", "-c", "echo hi"};
    job.state = JobState::kRunning;
    job.attempt = 1;
    job.submit_time = absl::FromUnixMillis(1000 * id);
    job.start_time = absl::FromUnixMillis(2000 * id);
    job.ranks = {{0, "node-a", "inc", 0, {0}, false, 0}, {1, "node-a", "inc", 1, {1}, true, 3}};
    return job;
  }

  std::string dir_;
  std::string path_;
};

TEST_F(StoreTest, CommittedStateSurvivesReopen) {
  {
    auto store = *Store::Open(path_);
    ASSERT_TRUE(store->Begin().ok());
    ASSERT_TRUE(store->InsertJob(SampleJob(7)).ok());
    Node node;
    node.name = "node-a";
    node.gpus = {{0, "", 0}, {1, "", 0}};
    node.incarnation = "inc";
    ASSERT_TRUE(store->SaveNode(node).ok());
    ASSERT_TRUE(store->AppendEvent(7, {123, "submitted", "acme", "hello"}).ok());
    ASSERT_TRUE(store->Commit().ok());
  }
  auto store = *Store::Open(path_);
  auto snap = store->Load();
  ASSERT_TRUE(snap.ok()) << snap.status();
  ASSERT_THAT(snap->jobs, SizeIs(1));
  const Job& job = snap->jobs[0];
  EXPECT_EQ(job.id, 7u);
  EXPECT_EQ(job.spec, SampleJob(7).spec);
  EXPECT_EQ(job.state, JobState::kRunning);
  EXPECT_EQ(job.start_time, absl::FromUnixMillis(14000));
  ASSERT_THAT(job.ranks, SizeIs(2));
  EXPECT_TRUE(job.ranks[1].exited);
  EXPECT_EQ(job.ranks[1].exit_code, 3);
  EXPECT_EQ(snap->max_job_id, 7u);
  ASSERT_THAT(snap->nodes, SizeIs(1));
  EXPECT_THAT(snap->nodes[0].gpus, SizeIs(2));
  auto events = store->Events(7);
  ASSERT_THAT(*events, SizeIs(1));
  EXPECT_EQ((*events)[0].message, "hello");
}

TEST_F(StoreTest, TenantsAreNumberedOnceAndANumberIsNeverReused) {
  {
    auto store = *Store::Open(path_);
    ASSERT_TRUE(store->Begin().ok());
    auto numbers = store->NumberTenants({"acme", "globex"});
    ASSERT_TRUE(numbers.ok()) << numbers.status();
    EXPECT_EQ(*numbers, (std::map<std::string, uint32_t>{{"acme", 1}, {"globex", 2}}));
    ASSERT_TRUE(store->Commit().ok());
  }
  auto store = *Store::Open(path_);
  ASSERT_TRUE(store->Begin().ok());
  // globex left the config, initech joined: globex keeps 2, initech gets 3.
  auto numbers = store->NumberTenants({"initech", "acme"});
  ASSERT_TRUE(numbers.ok()) << numbers.status();
  EXPECT_EQ(*numbers,
            (std::map<std::string, uint32_t>{{"acme", 1}, {"globex", 2}, {"initech", 3}}));
  ASSERT_TRUE(store->Commit().ok());
}

TEST_F(StoreTest, RolledBackChangesAreGone) {
  auto store = *Store::Open(path_);
  ASSERT_TRUE(store->Begin().ok());
  ASSERT_TRUE(store->InsertJob(SampleJob(1)).ok());
  store->Rollback();
  EXPECT_THAT(store->Load()->jobs, SizeIs(0));
}

TEST_F(StoreTest, UncommittedChangesAreLostOnCrash) {
  {
    auto store = *Store::Open(path_);
    ASSERT_TRUE(store->Begin().ok());
    ASSERT_TRUE(store->InsertJob(SampleJob(1)).ok());
    ASSERT_TRUE(store->Commit().ok());
    ASSERT_TRUE(store->Begin().ok());
    ASSERT_TRUE(store->InsertJob(SampleJob(2)).ok());
    // Destroyed without commit: what a kill -9 leaves behind.
  }
  auto store = *Store::Open(path_);
  EXPECT_THAT(store->Load()->jobs, SizeIs(1));
}

// Damages one column of a committed row and returns what Load says.
absl::Status LoadAfter(const std::string& path, const char* damage) {
  sqlite3* db = nullptr;
  EXPECT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  EXPECT_EQ(sqlite3_exec(db, damage, nullptr, nullptr, nullptr), SQLITE_OK);
  sqlite3_close(db);
  return (*Store::Open(path))->Load().status();
}

TEST_F(StoreTest, DamagedJobRowIsDataLossNotSilence) {
  {
    auto store = *Store::Open(path_);
    ASSERT_TRUE(store->Begin().ok());
    ASSERT_TRUE(store->InsertJob(SampleJob(1)).ok());
    ASSERT_TRUE(store->Commit().ok());
  }
  absl::Status loaded = LoadAfter(path_, "UPDATE jobs SET spec='::not yaml: [' WHERE id=1");
  ASSERT_FALSE(loaded.ok());
  EXPECT_EQ(loaded.code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(std::string(loaded.message()), HasSubstr("job 1"));
}

TEST_F(StoreTest, UnknownStatesOnLoadAreDataLossNamingTheRow) {
  {
    auto store = *Store::Open(path_);
    ASSERT_TRUE(store->Begin().ok());
    Node node;
    node.name = "node-a";
    ASSERT_TRUE(store->SaveNode(node).ok());
    Reclaim r;
    r.id = 4;
    r.victims.push_back({1, "acme", VictimState::kKilled, "why", 10, 1.5});
    ASSERT_TRUE(store->SaveReclaim(r).ok());
    ASSERT_TRUE(store->Commit().ok());
    auto snap = store->Load();
    ASSERT_TRUE(snap.ok()) << snap.status();
    EXPECT_EQ(snap->reclaims[0].victims[0].state, VictimState::kKilled);
  }
  absl::Status node = LoadAfter(path_, "UPDATE nodes SET state='Ready'");
  EXPECT_EQ(node.code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(std::string(node.message()), HasSubstr("node node-a"));
  (void)LoadAfter(path_, "UPDATE nodes SET state='ready'");
  absl::Status reclaim = LoadAfter(path_, "UPDATE reclaims SET state='done'");
  EXPECT_THAT(std::string(reclaim.message()), HasSubstr("reclaim 4"));
  (void)LoadAfter(path_, "UPDATE reclaims SET state='draining'");
  absl::Status victim = LoadAfter(path_, "UPDATE reclaims SET victims="
                                         "'[{\"job\":1,\"tenant\":\"a\",\"state\":\"gone\","
                                         "\"why\":\"\",\"step\":1,\"save_s\":1}]'");
  EXPECT_EQ(victim.code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(std::string(victim.message()), HasSubstr("victim in unknown state gone"));
}

TEST_F(StoreTest, LoadReadsColumnsByNameWhateverTheirOrderOnDisk) {
  // An old database whose jobs table got its later columns in another order.
  {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(path_.c_str(), &db), SQLITE_OK);
    ASSERT_EQ(sqlite3_exec(db, "CREATE TABLE jobs (id INTEGER PRIMARY KEY, tenant TEXT NOT NULL, "
                               "spec TEXT NOT NULL, state TEXT NOT NULL, reason TEXT NOT NULL, "
                               "restarts INTEGER NOT NULL, preemptions INTEGER NOT NULL, "
                               "attempt INTEGER NOT NULL, last_checkpoint_step INTEGER NOT NULL, "
                               "submit_ms INTEGER NOT NULL, start_ms INTEGER NOT NULL, "
                               "end_ms INTEGER NOT NULL, stopping INTEGER NOT NULL, "
                               "master_addr TEXT NOT NULL, master_port INTEGER NOT NULL, "
                               "rendezvous_port INTEGER NOT NULL, "
                               "gpu_seconds REAL NOT NULL DEFAULT 0)",
                           nullptr, nullptr, nullptr),
              SQLITE_OK);
    sqlite3_close(db);
  }
  Job job = SampleJob(1);
  job.gpu_seconds = 12.5;
  job.resume_step = 40;
  {
    auto store = *Store::Open(path_);
    ASSERT_TRUE(store->Begin().ok());
    ASSERT_TRUE(store->InsertJob(job).ok());
    ASSERT_TRUE(store->Commit().ok());
  }
  auto snap = (*Store::Open(path_))->Load();
  ASSERT_TRUE(snap.ok()) << snap.status();
  EXPECT_DOUBLE_EQ(snap->jobs[0].gpu_seconds, 12.5);
  EXPECT_EQ(snap->jobs[0].resume_step, 40);
}

TEST_F(StoreTest, AFailedWriteIsRememberedAndCommitRefuses) {
  auto store = *Store::Open(path_);
  ASSERT_TRUE(store->Begin().ok());
  ASSERT_TRUE(store->InsertJob(SampleJob(1)).ok());
  store->TEST_FailWrite(1);
  absl::Status failed = store->AppendEvent(1, {1, "kind", "who", "msg"});
  EXPECT_EQ(failed.code(), absl::StatusCode::kInternal);
  EXPECT_TRUE(store->AppendEvent(1, {2, "kind", "who", "msg"}).ok()) << "later writes may work";
  EXPECT_EQ(store->failure(), failed) << "the first failure is the one remembered";
  EXPECT_EQ(store->Commit(), failed);
  store->Rollback();
  EXPECT_TRUE(store->failure().ok());
  EXPECT_THAT(store->Load()->jobs, SizeIs(0));
}

TEST_F(StoreTest, RollingBackToASavepointUndoesOnlyWhatCameAfterIt) {
  auto store = *Store::Open(path_);
  ASSERT_TRUE(store->Begin().ok());
  ASSERT_TRUE(store->InsertJob(SampleJob(1)).ok());
  ASSERT_TRUE(store->Savepoint().ok());
  ASSERT_TRUE(store->InsertJob(SampleJob(2)).ok());
  ASSERT_TRUE(store->RollbackToSavepoint().ok());
  ASSERT_TRUE(store->Savepoint().ok());
  ASSERT_TRUE(store->InsertJob(SampleJob(3)).ok());
  ASSERT_TRUE(store->ReleaseSavepoint().ok());
  ASSERT_TRUE(store->Commit().ok());
  auto snap = store->Load();
  ASSERT_THAT(snap->jobs, SizeIs(2));
  EXPECT_EQ(snap->jobs[0].id, 1u);
  EXPECT_EQ(snap->jobs[1].id, 3u);
}

TEST_F(StoreTest, OpenFailsClearlyOnUnwritablePath) {
  auto store = Store::Open(dir_ + "/missing-dir/state.db");
  ASSERT_FALSE(store.ok());
  EXPECT_THAT(std::string(store.status().message()), HasSubstr("missing-dir"));
}

}  // namespace
}  // namespace sublet::coordinator

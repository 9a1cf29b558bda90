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

TEST_F(StoreTest, DamagedJobRowIsDataLossNotSilence) {
  {
    auto store = *Store::Open(path_);
    ASSERT_TRUE(store->Begin().ok());
    ASSERT_TRUE(store->InsertJob(SampleJob(1)).ok());
    ASSERT_TRUE(store->Commit().ok());
  }
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path_.c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db, "UPDATE jobs SET spec='::not yaml: [' WHERE id=1", nullptr, nullptr,
                         nullptr),
            SQLITE_OK);
  sqlite3_close(db);
  auto store = *Store::Open(path_);
  auto snap = store->Load();
  ASSERT_FALSE(snap.ok());
  EXPECT_EQ(snap.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(std::string(snap.status().message()), HasSubstr("job 1"));
}

TEST_F(StoreTest, OpenFailsClearlyOnUnwritablePath) {
  auto store = Store::Open(dir_ + "/missing-dir/state.db");
  ASSERT_FALSE(store.ok());
  EXPECT_THAT(std::string(store.status().message()), HasSubstr("missing-dir"));
}

}  // namespace
}  // namespace sublet::coordinator

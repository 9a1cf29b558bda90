// What a rank reads from its environment to speak to its worker.
#include "worker/control_client.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <zmq.hpp>

namespace sublet::worker {
namespace {

class ControlClientEnvTest : public ::testing::Test {
 protected:
  void SetUp() override {
    setenv("SUBLET_CONTROL", "inproc://control-client-test", 1);
    setenv("SUBLET_CONTROL_TOKEN", "secret", 1);
    setenv("SUBLET_JOB_ID", "7", 1);
    setenv("SUBLET_ATTEMPT", "2", 1);
    setenv("SUBLET_RANK", "3", 1);
  }
  void TearDown() override {
    for (const char* name : {"SUBLET_CONTROL", "SUBLET_CONTROL_TOKEN", "SUBLET_JOB_ID",
                             "SUBLET_ATTEMPT", "SUBLET_RANK"}) {
      unsetenv(name);
    }
  }

  zmq::context_t context_;
};

TEST_F(ControlClientEnvTest, ReadsTheRanksIdentity) {
  auto client = ControlClient::FromEnvironment(context_);
  ASSERT_TRUE(client.ok()) << client.status();
  ASSERT_NE(*client, nullptr);
  EXPECT_EQ((*client)->key(), (protocols::RankKey{7, 2, 3}));
}

TEST_F(ControlClientEnvTest, IsAbsentWhenNotStartedByAWorker) {
  unsetenv("SUBLET_CONTROL");
  auto client = ControlClient::FromEnvironment(context_);
  ASSERT_TRUE(client.ok()) << client.status();
  EXPECT_EQ(*client, nullptr);
}

TEST_F(ControlClientEnvTest, RefusesAJobIdThatIsNotAPositiveInteger) {
  for (const char* bad : {"abc", "0", "-1", "12x", ""}) {
    SCOPED_TRACE(bad);
    setenv("SUBLET_JOB_ID", bad, 1);
    auto client = ControlClient::FromEnvironment(context_);
    ASSERT_FALSE(client.ok());
    EXPECT_EQ(client.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(client.status().message(), std::string("SUBLET_JOB_ID: invalid job id '") + bad +
                                             "': expected a positive integer");
  }
}

TEST_F(ControlClientEnvTest, NamesAMissingIdentityVariable) {
  unsetenv("SUBLET_JOB_ID");
  auto client = ControlClient::FromEnvironment(context_);
  ASSERT_FALSE(client.ok());
  EXPECT_EQ(client.status().message(), "SUBLET_CONTROL is set but SUBLET_JOB_ID is not");
}

TEST_F(ControlClientEnvTest, RefusesAMalformedRank) {
  setenv("SUBLET_RANK", "two", 1);
  auto client = ControlClient::FromEnvironment(context_);
  ASSERT_FALSE(client.ok());
  EXPECT_EQ(client.status().message(), "SUBLET_RANK: 'two' is not a number");
}

}  // namespace
}  // namespace sublet::worker

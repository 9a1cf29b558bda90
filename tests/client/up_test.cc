#include "client/up.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include <sstream>

namespace sublet::client {
namespace {

using ::testing::HasSubstr;

TEST(UpConfigTest, NamesStorageTokensAndHeartbeat) {
  YAML::Node config = YAML::Load(RenderUpCoordinatorConfig("/tmp/up-1"));
  EXPECT_EQ(config["storage_root"].as<std::string>(), "/tmp/up-1/storage");
  EXPECT_EQ(config["heartbeat_timeout"].as<std::string>(), "10s");
  EXPECT_EQ(config["tenants"][0]["name"].as<std::string>(), "dev");
  EXPECT_EQ(config["tenants"][0]["token"].as<std::string>(), "dev-token");
  EXPECT_EQ(config["admins"][0]["token"].as<std::string>(), "admin-token");
  EXPECT_EQ(config["workers"]["token"].as<std::string>(), "node-token");
}

TEST(UpTest, RejectsZeroWorkersNamingTheFlag) {
  std::ostringstream out, err;
  UpOptions options;
  options.workers = 0;
  absl::Status status = RunUp(options, out, err);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(status.message()), HasSubstr("--workers"));
}

TEST(UpTest, FailsBeforeStartingAnythingWhenTheDaemonsAreMissing) {
  std::ostringstream out, err;
  UpOptions options;
  options.bin_dir = "/nonexistent";
  absl::Status status = RunUp(options, out, err);
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(status.message()), HasSubstr("sublet-coordinator not found"));
}

}  // namespace
}  // namespace sublet::client

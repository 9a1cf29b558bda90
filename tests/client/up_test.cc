#include "client/up.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include <sstream>

namespace sublet::client {
namespace {

using ::testing::HasSubstr;
using ::testing::MatchesRegex;

TEST(UpConfigTest, NamesStorageTokensHeartbeatAndNodeKeys) {
  // Z85 keys hold YAML's special characters; the config must carry them as they are.
  const std::vector<std::string> keys = {"{#&*!%@:]abcdefghijklmnopqrstuvwxyz012345",
                                         "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7"};
  YAML::Node config =
      YAML::Load(RenderUpCoordinatorConfig("/tmp/up-1", *MakeUpTenants({}), keys));
  EXPECT_EQ(config["storage_root"].as<std::string>(), "/tmp/up-1/storage");
  EXPECT_EQ(config["heartbeat_timeout"].as<std::string>(), "10s");
  EXPECT_EQ(config["tenants"][0]["name"].as<std::string>(), "dev");
  EXPECT_EQ(config["tenants"][0]["token"].as<std::string>(), "dev-token");
  EXPECT_EQ(config["admins"][0]["token"].as<std::string>(), "admin-token");
  EXPECT_FALSE(config["workers"]["token"]) << "nodes prove themselves by their keys";
  ASSERT_EQ(config["workers"]["keys"].size(), 2u);
  EXPECT_EQ(config["workers"]["keys"][0].as<std::string>(), keys[0]);
  EXPECT_EQ(config["workers"]["keys"][1].as<std::string>(), keys[1]);
}

TEST(UpConfigTest, WithoutTenantsTheOneTenantIsDev) {
  auto tenants = MakeUpTenants({});
  ASSERT_TRUE(tenants.ok());
  EXPECT_EQ(*tenants, (std::vector<UpTenant>{{"dev", "dev-token"}}));
}

TEST(UpConfigTest, EachNamedTenantGetsItsOwnRandomTokenAndNoDev) {
  auto tenants = MakeUpTenants({"acme", "globex"});
  ASSERT_TRUE(tenants.ok()) << tenants.status();
  ASSERT_EQ(tenants->size(), 2u);
  EXPECT_EQ((*tenants)[0].name, "acme");
  EXPECT_EQ((*tenants)[1].name, "globex");
  for (const UpTenant& t : *tenants) {
    EXPECT_THAT(t.token, MatchesRegex("[0-9a-f]{32}")) << "128 bits in hex";
  }
  EXPECT_NE((*tenants)[0].token, (*tenants)[1].token);
  EXPECT_NE((*tenants)[0].token, (*MakeUpTenants({"acme"}))[0].token) << "fresh every time";

  YAML::Node config = YAML::Load(RenderUpCoordinatorConfig("/tmp/up-2", *tenants, {}));
  ASSERT_EQ(config["tenants"].size(), 2u);
  for (size_t i = 0; i < 2; ++i) {
    EXPECT_EQ(config["tenants"][i]["name"].as<std::string>(), (*tenants)[i].name);
    EXPECT_EQ(config["tenants"][i]["token"].as<std::string>(), (*tenants)[i].token);
  }
  EXPECT_EQ(config["admins"][0]["token"].as<std::string>(), "admin-token");
}

TEST(UpConfigTest, RefusesRepeatedOrUnsafeTenantNamesNamingTheFlag) {
  for (const std::vector<std::string>& names :
       {std::vector<std::string>{"acme", "acme"}, {"acme", ""}, {"../etc"}, {"a b"}, {".hidden"},
        {"x: y"}}) {
    auto tenants = MakeUpTenants(names);
    EXPECT_EQ(tenants.status().code(), absl::StatusCode::kInvalidArgument) << names.back();
    EXPECT_THAT(std::string(tenants.status().message()), HasSubstr("--tenants"));
  }
}

TEST(UpTest, RefusesBadTenantsBeforeStartingAnything) {
  std::ostringstream out, err;
  UpOptions options;
  options.bin_dir = "/nonexistent";
  options.tenants = {"acme", "acme"};
  EXPECT_EQ(RunUp(options, out, err).code(), absl::StatusCode::kInvalidArgument);
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

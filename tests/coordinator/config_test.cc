#include "coordinator/config.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace sublet::coordinator {
namespace {

using ::testing::HasSubstr;

constexpr const char* kConfig = R"(
storage_root: /srv/sublet
heartbeat_timeout: 5s
tenants:
  - {name: acme, token: "acme-token"}
  - {name: globex, token: "globex-token"}
admins:
  - {name: infra, token: "admin-token"}
workers: {token: "node-token"}
)";

TEST(ConfigTest, MapsEachTokenToOnePrincipal) {
  auto config = ParseConfig(kConfig);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->heartbeat_timeout, absl::Seconds(5));
  EXPECT_EQ(config->Authenticate("acme-token")->name, "acme");
  EXPECT_EQ(config->Authenticate("acme-token")->role, Role::kTenant);
  EXPECT_EQ(config->Authenticate("admin-token")->role, Role::kAdmin);
  EXPECT_EQ(config->Authenticate("node-token")->role, Role::kWorker);
  EXPECT_FALSE(config->Authenticate("nope").has_value());
  EXPECT_FALSE(config->Authenticate("").has_value());
}

TEST(ConfigTest, RejectsDuplicateToken) {
  auto config = ParseConfig(
      "storage_root: /x\ntenants: [{name: a, token: t}]\nadmins: [{name: b, token: t}]\n");
  ASSERT_FALSE(config.ok());
  EXPECT_THAT(std::string(config.status().message()), HasSubstr("admins[0].token: duplicate"));
}

TEST(ConfigTest, RejectsUnknownFieldAndNamesIt) {
  auto config = ParseConfig("storage_root: /x\nheartbeat: 5s\n");
  ASSERT_FALSE(config.ok());
  EXPECT_THAT(std::string(config.status().message()), HasSubstr("heartbeat: unknown field"));
}

TEST(ConfigTest, RejectsMalformedDuration) {
  auto config = ParseConfig("storage_root: /x\nheartbeat_timeout: soon\n");
  ASSERT_FALSE(config.ok());
  EXPECT_THAT(std::string(config.status().message()), HasSubstr("heartbeat_timeout"));
}

TEST(ConfigTest, RequiresStorageRoot) {
  auto config = ParseConfig("tenants: []\n");
  ASSERT_FALSE(config.ok());
  EXPECT_THAT(std::string(config.status().message()), HasSubstr("storage_root"));
}

TEST(ConfigTest, ParsesAndChecksTheRestartBackoff) {
  auto config = ParseConfig("storage_root: /x\nrestart_backoff: {base: 5s, max: 1m}\n");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->restart_backoff_base, absl::Seconds(5));
  EXPECT_EQ(config->restart_backoff_max, absl::Minutes(1));
  EXPECT_EQ(ParseConfig("storage_root: /x\n")->restart_backoff_base, absl::Seconds(10));
  EXPECT_EQ(ParseConfig("storage_root: /x\nrestart_backoff: {base: 0s}\n")->restart_backoff_base,
            absl::ZeroDuration());
  EXPECT_EQ(ParseConfig("storage_root: /x\nrestart_backoff: {base: 2m, max: 1m}\n")
                .status()
                .message(),
            "restart_backoff.max: must be at least restart_backoff.base");
  EXPECT_THAT(std::string(ParseConfig("storage_root: /x\nrestart_backoff: {bass: 1s}\n")
                              .status()
                              .message()),
              HasSubstr("bass"));
}

TEST(ConfigTest, RequiresAnAbsoluteStorageRoot) {
  EXPECT_EQ(ParseConfig("storage_root: relative/dir\n").status().message(),
            "storage_root: must be an absolute path, got 'relative/dir'");
}

TEST(ConfigTest, RejectsYamlSyntaxError) {
  EXPECT_FALSE(ParseConfig("storage_root: [unclosed").ok());
}

}  // namespace
}  // namespace sublet::coordinator

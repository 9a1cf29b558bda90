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

namespace sublet::coordinator {
namespace {

TEST(ConfigSecurityTest, ATokenHashAuthenticatesTheTokenItIsTheHashOf) {
  // printf %s acme-token | sha256sum
  const std::string hash = Sha256Hex("acme-token");
  EXPECT_EQ(hash.size(), 64u);
  auto config = ParseConfig("storage_root: /x\ntenants: [{name: acme, token_sha256: \"" + hash +
                            "\"}]\n");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->Authenticate("acme-token")->name, "acme");
  EXPECT_FALSE(config->Authenticate(hash).has_value()) << "the hash is not the credential";
}

TEST(ConfigSecurityTest, TokenAndHashOfTheSameTokenAreADuplicate) {
  auto config = ParseConfig("storage_root: /x\ntenants: [{name: a, token: t}]\nadmins: [{name: b, "
                            "token_sha256: \"" + Sha256Hex("t") + "\"}]\n");
  ASSERT_FALSE(config.ok());
  EXPECT_THAT(std::string(config.status().message()),
              HasSubstr("admins[0].token_sha256: duplicate"));
}

TEST(ConfigSecurityTest, MalformedOrDoubledCredentialsNameTheField) {
  auto bad_hash = ParseConfig("storage_root: /x\ntenants: [{name: a, token_sha256: abc}]\n");
  ASSERT_FALSE(bad_hash.ok());
  EXPECT_THAT(std::string(bad_hash.status().message()),
              HasSubstr("tenants[0].token_sha256: must be 64 hex digits"));
  auto both = ParseConfig("storage_root: /x\ntenants: [{name: a, token: t, token_sha256: \"" +
                          Sha256Hex("t") + "\"}]\n");
  ASSERT_FALSE(both.ok());
  EXPECT_THAT(std::string(both.status().message()), HasSubstr("tenants[0]: give token or"));
  auto none = ParseConfig("storage_root: /x\ntenants: [{name: a}]\n");
  ASSERT_FALSE(none.ok());
  EXPECT_THAT(std::string(none.status().message()), HasSubstr("tenants[0]: token or"));
}

TEST(ConfigSecurityTest, WorkerKeysAreParsedAndTheWorkerTokenIsOptional) {
  const std::string key = "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7";
  auto config = ParseConfig("storage_root: /x\nworkers:\n  keys: ['" + key + "']\n");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_TRUE(config->worker_keys.contains(key));
  EXPECT_FALSE(config->worker_token);
  auto with_token =
      ParseConfig("storage_root: /x\nworkers: {keys: ['" + key + "'], token: node-token}\n");
  ASSERT_TRUE(with_token.ok()) << with_token.status();
  EXPECT_TRUE(with_token->worker_token);
  EXPECT_EQ(with_token->Authenticate("node-token")->role, Role::kWorker);
}

TEST(ConfigSecurityTest, BadOrRepeatedWorkerKeysNameTheirIndex) {
  auto bad = ParseConfig("storage_root: /x\nworkers: {keys: [short]}\n");
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(std::string(bad.status().message()), HasSubstr("workers.keys[0]: not a CURVE key"));
  const std::string key = "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7";
  auto twice = ParseConfig("storage_root: /x\nworkers: {keys: ['" + key + "', '" + key + "']}\n");
  ASSERT_FALSE(twice.ok());
  EXPECT_THAT(std::string(twice.status().message()), HasSubstr("workers.keys[1]: listed twice"));
}

}  // namespace
}  // namespace sublet::coordinator

#include "client/context.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>

namespace sublet::client {
namespace {

namespace fs = std::filesystem;

class ContextTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = (fs::temp_directory_path() / "sublet-context-XXXXXX").string();
    ASSERT_NE(mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
    env_["XDG_CONFIG_HOME"] = dir_ + "/xdg";
    env_["HOME"] = dir_ + "/home";
  }
  void TearDown() override { fs::remove_all(dir_); }

  EnvLookup Env() {
    return [this](const std::string& name) -> std::optional<std::string> {
      auto it = env_.find(name);
      if (it == env_.end()) return std::nullopt;
      return it->second;
    };
  }
  std::string ContextPath() { return dir_ + "/xdg/sublet/context.yaml"; }
  void WriteContext(const std::string& coordinator, const std::string& token,
                    const std::string& key = "") {
    ASSERT_TRUE(WriteContextFile(ContextPath(), {.coordinator = coordinator,
                                                 .coordinator_key = key,
                                                 .token = token})
                    .ok());
  }

  std::string dir_;
  std::map<std::string, std::string> env_;
};

TEST_F(ContextTest, DefaultsWhenNothingIsSet) {
  absl::StatusOr<Settings> settings = ResolveSettings({}, Env());
  ASSERT_TRUE(settings.ok()) << settings.status();
  EXPECT_EQ(settings->coordinator, "tcp://127.0.0.1:7700");
  EXPECT_EQ(settings->token, "");
}

TEST_F(ContextTest, ContextFileBeatsDefault) {
  WriteContext("tcp://127.0.0.1:9000", "dev-token");
  absl::StatusOr<Settings> settings = ResolveSettings({}, Env());
  ASSERT_TRUE(settings.ok()) << settings.status();
  EXPECT_EQ(settings->coordinator, "tcp://127.0.0.1:9000");
  EXPECT_EQ(settings->token, "dev-token");
}

TEST_F(ContextTest, EnvironmentBeatsContextFile) {
  WriteContext("tcp://127.0.0.1:9000", "dev-token");
  env_["SUBLET_COORDINATOR"] = "tcp://10.0.0.1:7700";
  env_["SUBLET_TOKEN"] = "env-token";
  absl::StatusOr<Settings> settings = ResolveSettings({}, Env());
  ASSERT_TRUE(settings.ok()) << settings.status();
  EXPECT_EQ(settings->coordinator, "tcp://10.0.0.1:7700");
  EXPECT_EQ(settings->token, "env-token");
}

TEST_F(ContextTest, FlagsBeatEnvironment) {
  env_["SUBLET_COORDINATOR"] = "tcp://10.0.0.1:7700";
  env_["SUBLET_TOKEN"] = "env-token";
  absl::StatusOr<Settings> settings =
      ResolveSettings({.coordinator = "tcp://10.0.0.2:7700", .token = "flag-token"}, Env());
  ASSERT_TRUE(settings.ok()) << settings.status();
  EXPECT_EQ(settings->coordinator, "tcp://10.0.0.2:7700");
  EXPECT_EQ(settings->token, "flag-token");
}

TEST_F(ContextTest, CoordinatorKeyComesFromFlagThenEnvironmentThenContextFile) {
  WriteContext("tcp://127.0.0.1:9000", "dev-token", "context-key");
  EXPECT_EQ(ResolveSettings({}, Env())->coordinator_key, "context-key");
  env_["SUBLET_COORDINATOR_KEY"] = "env-key";
  EXPECT_EQ(ResolveSettings({}, Env())->coordinator_key, "env-key");
  EXPECT_EQ(ResolveSettings({.coordinator_key = "flag-key"}, Env())->coordinator_key, "flag-key");
}

TEST_F(ContextTest, EachSettingFallsBackOnItsOwn) {
  WriteContext("tcp://127.0.0.1:9000", "dev-token");
  env_["SUBLET_TOKEN"] = "env-token";
  absl::StatusOr<Settings> settings = ResolveSettings({}, Env());
  ASSERT_TRUE(settings.ok()) << settings.status();
  EXPECT_EQ(settings->coordinator, "tcp://127.0.0.1:9000");
  EXPECT_EQ(settings->token, "env-token");
}

TEST_F(ContextTest, ContextPathPrefersXdgConfigHome) {
  EXPECT_EQ(ContextFilePath(Env()), dir_ + "/xdg/sublet/context.yaml");
}

TEST_F(ContextTest, ContextPathFallsBackToHomeConfig) {
  env_.erase("XDG_CONFIG_HOME");
  EXPECT_EQ(ContextFilePath(Env()), dir_ + "/home/.config/sublet/context.yaml");
}

TEST_F(ContextTest, WrittenContextReadsBack) {
  WriteContext("tcp://127.0.0.1:7700", "dev-token", "{#&*!%@:]key");
  absl::StatusOr<std::optional<ContextFile>> context = ReadContextFile(ContextPath());
  ASSERT_TRUE(context.ok()) << context.status();
  ASSERT_TRUE(context->has_value());
  EXPECT_EQ(**context, (ContextFile{.coordinator = "tcp://127.0.0.1:7700",
                                    .coordinator_key = "{#&*!%@:]key",
                                    .token = "dev-token"}));
}

TEST_F(ContextTest, MissingContextFileIsNotAnError) {
  absl::StatusOr<std::optional<ContextFile>> context = ReadContextFile(ContextPath());
  ASSERT_TRUE(context.ok()) << context.status();
  EXPECT_FALSE(context->has_value());
}

TEST_F(ContextTest, MalformedContextFileIsInvalidArgumentNamingTheFile) {
  fs::create_directories(fs::path(ContextPath()).parent_path());
  std::ofstream(ContextPath()) << "coordinator: [unclosed\n";
  absl::StatusOr<Settings> settings = ResolveSettings({}, Env());
  EXPECT_EQ(settings.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(settings.status().message().find(ContextPath()), absl::string_view::npos);
}

TEST_F(ContextTest, MalformedContextFileIsIgnoredWhenFlagsSayEverything) {
  fs::create_directories(fs::path(ContextPath()).parent_path());
  std::ofstream(ContextPath()) << "- not a map\n";
  EXPECT_TRUE(
      ResolveSettings({.coordinator = "tcp://h:1", .token = "t", .coordinator_key = "k"}, Env())
          .ok());
}

}  // namespace
}  // namespace sublet::client

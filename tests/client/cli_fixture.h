// The fixture of the CLI tests: `sublet ARGS` run in-process (RunCli) with
// a scratch XDG_CONFIG_HOME, against a FakeCoordinator, capturing stdout and
// stderr.
#pragma once

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "client/cli/cli.h"
#include "tests/client/fake_coordinator.h"

namespace sublet::client::cli {

constexpr char kHelloSpec[] =
    "name: hello\nresources: {nodes: 1, gpus_per_node: 1}\ncommand: [echo, hi]\n";

class CliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = (std::filesystem::temp_directory_path() / "sublet-cli-XXXXXX").string();
    ASSERT_NE(mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::string WriteFile(const std::string& name, const std::string& text) {
    const std::string path = dir_ + "/" + name;
    std::ofstream(path) << text;
    return path;
  }

  // Runs `sublet args...` with only XDG_CONFIG_HOME set (to an empty dir).
  int Run(std::vector<std::string> args) {
    args.insert(args.begin(), "sublet");
    std::vector<const char*> argv;
    for (const auto& arg : args) argv.push_back(arg.c_str());
    out_.str("");
    err_.str("");
    EnvLookup env = [this](const std::string& name) -> std::optional<std::string> {
      if (name == "XDG_CONFIG_HOME") return dir_;
      return std::nullopt;
    };
    return RunCli(static_cast<int>(argv.size()), argv.data(), env, out_, err_);
  }

  // Runs against `fake` with a tenant token.
  int RunAgainst(const testing::FakeCoordinator& fake, std::vector<std::string> args) {
    args.insert(args.begin(), {"--coordinator", fake.endpoint(), "--coordinator-key",
                               fake.public_key(), "--token", "acme-token"});
    return Run(std::move(args));
  }

  std::string dir_;
  std::ostringstream out_;
  std::ostringstream err_;
};

inline protocols::Body JobReplyIn(std::string state) {
  protocols::JobInfo job;
  job.id = 17;
  job.name = "hello";
  job.tenant = "acme";
  job.state = std::move(state);
  return protocols::JobReply{job};
}

}  // namespace sublet::client::cli

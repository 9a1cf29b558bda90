// `sublet ckpt ls` and `sublet ckpt verify` on real checkpoint directories.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "checkpoint/checkpoint.h"
#include "client/cli/cli.h"

namespace sublet::client::cli {
namespace {

namespace fs = std::filesystem;
namespace ckpt = sublet::checkpoint;
using ::testing::HasSubstr;

class CkptCliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = (fs::temp_directory_path() / "sublet-ckpt-cli-XXXXXX").string();
    ASSERT_NE(mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
    Save(1);
    Save(2);
  }
  void TearDown() override { fs::remove_all(dir_); }

  void Save(int64_t step) {
    std::vector<std::byte> data(3 << 20, std::byte{static_cast<unsigned char>(step)});
    ckpt::TensorShard shard{{"w", ckpt::DType::kF32, {3, 1 << 18}, 0}, data.data(), data.size()};
    ckpt::SaveOptions o;
    o.dir = dir_;
    o.keep = 0;
    ckpt::PosixFileSystem fs;
    ckpt::SoloGroup group;
    ASSERT_TRUE(ckpt::SaveCheckpoint(fs, group, o, {step, 64, ""}, {&shard, 1}).ok());
  }

  int Run(std::vector<std::string> args) {
    args.insert(args.begin(), "sublet");
    std::vector<const char*> argv;
    for (const auto& arg : args) argv.push_back(arg.c_str());
    out_.str("");
    err_.str("");
    EnvLookup env = [](const std::string&) -> std::optional<std::string> { return std::nullopt; };
    return RunCli(static_cast<int>(argv.size()), argv.data(), env, out_, err_);
  }

  void FlipByte(const std::string& path, std::streamoff offset) {
    std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(offset);
    f.put('\x5a');
  }

  std::string dir_;
  std::ostringstream out_, err_;
};

TEST_F(CkptCliTest, VerifyValidCheckpointExitsZero) {
  EXPECT_EQ(Run({"ckpt", "verify", dir_ + "/step-00000002"}), 0) << err_.str();
  EXPECT_THAT(out_.str(), HasSubstr("valid: step 2"));
}

TEST_F(CkptCliTest, VerifyNamesTheBadFileAndOffset) {
  FlipByte(dir_ + "/step-00000002/shard-00000.bin", (1 << 20) + 7);
  EXPECT_EQ(Run({"ckpt", "verify", dir_ + "/step-00000002"}), 1);
  EXPECT_THAT(err_.str(), HasSubstr("shard-00000.bin: checksum mismatch in bytes [1048576, 2097152)"));
}

TEST_F(CkptCliTest, VerifyJsonReportsDataLoss) {
  fs::resize_file(dir_ + "/step-00000002/shard-00000.bin", 100);
  EXPECT_EQ(Run({"ckpt", "verify", dir_ + "/step-00000002", "-o", "json"}), 1);
  nlohmann::json doc = nlohmann::json::parse(out_.str());
  EXPECT_EQ(doc["error"]["code"], "DATA_LOSS");
  EXPECT_THAT(doc["error"]["message"].get<std::string>(), HasSubstr("shard-00000.bin: 100 bytes"));
}

TEST_F(CkptCliTest, VerifyAcceptsTheStepAsLsPrintsIt) {
  for (const char* given : {"/step-2", "/2", "/step-2/"}) {
    out_.str("");
    EXPECT_EQ(Run({"ckpt", "verify", dir_ + given}), 0) << given << ": " << err_.str();
    EXPECT_THAT(out_.str(), HasSubstr("valid: step 2")) << given;
  }
  EXPECT_EQ(Run({"ckpt", "verify", dir_ + "/step-9"}), 3);
}

TEST_F(CkptCliTest, VerifyMissingDirectoryIsNotFound) {
  EXPECT_EQ(Run({"ckpt", "verify", dir_ + "/step-00000009"}), 3);
}

TEST_F(CkptCliTest, LsJsonListsStatesNewestFirst) {
  fs::remove(dir_ + "/step-00000002/COMMIT");
  ASSERT_EQ(Run({"-o", "json", "ckpt", "ls", dir_}), 0) << err_.str();
  nlohmann::json doc = nlohmann::json::parse(out_.str());
  ASSERT_EQ(doc["checkpoints"].size(), 2u);
  EXPECT_EQ(doc["checkpoints"][0]["step"], 2);
  EXPECT_EQ(doc["checkpoints"][0]["state"], "partial");
  EXPECT_EQ(doc["checkpoints"][1]["state"], "committed");
  EXPECT_EQ(doc["checkpoints"][1]["bytes"], 3 << 20);
  EXPECT_EQ(doc["checkpoints"][1]["data_position"], 64);
}

TEST_F(CkptCliTest, LsTableShowsProblem) {
  fs::remove(dir_ + "/step-00000001/MANIFEST");
  ASSERT_EQ(Run({"ckpt", "ls", dir_}), 0);
  EXPECT_THAT(out_.str(), HasSubstr("committed"));
  EXPECT_THAT(out_.str(), HasSubstr("corrupt"));
  EXPECT_THAT(out_.str(), HasSubstr("MANIFEST"));
}

TEST_F(CkptCliTest, LsMissingDirectoryIsNotFound) {
  EXPECT_EQ(Run({"ckpt", "ls", dir_ + "/nope"}), 3);
}

}  // namespace
}  // namespace sublet::client::cli

#include "worker/inventory.h"

#include <set>

#include <gtest/gtest.h>

namespace sublet::worker {
namespace {

TEST(InventoryTest, EmulatesTheRequestedNumberOfGpus) {
  std::vector<protocols::GpuInfo> gpus = EmulatedGpus(3);
  ASSERT_EQ(gpus.size(), 3u);
  for (uint32_t i = 0; i < 3; ++i) {
    EXPECT_EQ(gpus[i].index, i);
    EXPECT_EQ(gpus[i].model, "emulated");
    EXPECT_EQ(gpus[i].memory_mib, 0u);
  }
}

TEST(InventoryTest, NvmlFindsGpusOrExplainsHowToEmulate) {
  absl::StatusOr<std::vector<protocols::GpuInfo>> gpus = NvmlGpus();
  if (!gpus.ok()) {
    EXPECT_TRUE(absl::IsNotFound(gpus.status())) << gpus.status();
    EXPECT_NE(gpus.status().message().find("pass --gpus N to emulate N GPUs"), std::string::npos);
    GTEST_SKIP() << "no NVIDIA driver here: " << gpus.status();
  }
  ASSERT_FALSE(gpus->empty());
  for (const protocols::GpuInfo& gpu : *gpus) {
    EXPECT_NE(gpu.model, "emulated");
    EXPECT_GT(gpu.memory_mib, 0u);
  }
}

TEST(ProbeFreePortsTest, ReturnsDistinctNonZeroPorts) {
  absl::StatusOr<std::vector<uint32_t>> ports = ProbeFreePorts("127.0.0.1", 8);
  ASSERT_TRUE(ports.ok()) << ports.status();
  ASSERT_EQ(ports->size(), 8u);
  std::set<uint32_t> distinct(ports->begin(), ports->end());
  EXPECT_EQ(distinct.size(), 8u);
  EXPECT_FALSE(distinct.contains(0));
}

TEST(ProbeFreePortsTest, FailsOnAnAddressOfAnotherHost) {
  EXPECT_TRUE(absl::IsUnavailable(ProbeFreePorts("192.0.2.1", 1).status()));
}

}  // namespace
}  // namespace sublet::worker

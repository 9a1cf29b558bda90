// The overlap blocks against their plain equivalents.
#include <gtest/gtest.h>

#include <cblas.h>

#include <numeric>

#include "collectives/overlap/bucketed_allreduce.h"
#include "collectives/overlap/collective_matmul.h"
#include "tests/collectives/rank_threads.h"

namespace sublet::collectives::testing {
namespace {

using overlap::BucketedAllReduce;

TEST(PlanBuckets, FirstBucketSmallerAndOversizedGradientsAlone) {
  // 4-byte elements; first bucket 100 B, then 400 B.
  auto plan = overlap::PlanBuckets({10, 10, 30, 50, 200, 5}, 4, 100, 400);
  ASSERT_EQ(plan.buckets.size(), 4u);
  EXPECT_EQ(plan.buckets[0], (std::vector<size_t>{0, 1}));
  EXPECT_EQ(plan.buckets[1], (std::vector<size_t>{2, 3}));
  EXPECT_EQ(plan.buckets[2], (std::vector<size_t>{4}));
  EXPECT_EQ(plan.buckets[3], (std::vector<size_t>{5}));
  EXPECT_EQ(plan.offset_of[3], 30u);
}

TEST(PlanBuckets, DefaultsAre25MiBWithASmallerFirst) {
  overlap::BucketedAllReduceOptions o;
  EXPECT_EQ(o.bucket_bytes, size_t{25} << 20);
  EXPECT_LT(o.first_bucket_bytes, o.bucket_bytes);
}

class Overlap : public ::testing::TestWithParam<int> {};

// Gradients marked ready in a different order on each rank still reduce to
// what one plain allreduce per gradient gives.
TEST_P(Overlap, BucketedAllReduceMatchesPlainAllReduce) {
  RunRanks(GetParam(), Layout::kOneNode, TestOptions(), [](Communicator& c) {
    std::vector<size_t> sizes = {300, 1, 5000, 77, 20000, 3};
    std::vector<std::vector<float>> grads, plain;
    std::vector<BucketedAllReduce::Gradient> views;
    for (size_t g = 0; g < sizes.size(); ++g) {
      grads.emplace_back(sizes[g]);
      for (size_t i = 0; i < sizes[g]; ++i) grads[g][i] = float((c.rank() + 1) * (i % 5) + g);
      plain.push_back(grads[g]);
    }
    for (auto& g : grads) views.push_back({g.data(), g.size()});
    overlap::BucketedAllReduceOptions o;
    o.first_bucket_bytes = 2000;
    o.bucket_bytes = 30000;
    o.op = ReduceOp::kSum;
    BucketedAllReduce bucketed(c, views, o);
    EXPECT_GE(bucketed.plan().buckets.size(), 3u);
    // The largest gradient is a bucket of its own: reduced in place.
    EXPECT_EQ(bucketed.plan().buckets[bucketed.plan().bucket_of[4]].size(), 1u);
    for (int step = 0; step < 2; ++step) {
      std::vector<size_t> order(sizes.size());
      std::iota(order.begin(), order.end(), 0);
      if (c.rank() % 2 == 1) std::reverse(order.begin(), order.end());
      for (size_t g : order) ASSERT_TRUE(bucketed.MarkReady(g).ok());
      // on_reduced sees each gradient once, already holding its sum.
      std::vector<std::vector<float>> at_call(sizes.size());
      std::vector<int> calls(sizes.size(), 0);
      ASSERT_TRUE(bucketed.Finish([&](size_t g) {
        ++calls[g];
        at_call[g] = grads[g];
      }).ok());
      for (auto& g : plain) {
        ASSERT_TRUE(c.AllReduce(g.data(), g.data(), g.size(), DataType::kF32, ReduceOp::kSum).ok());
      }
      EXPECT_EQ(grads, plain) << "step " << step;
      EXPECT_EQ(at_call, plain) << "step " << step;
      EXPECT_EQ(calls, std::vector<int>(sizes.size(), 1));
    }
    EXPECT_TRUE(absl::IsInvalidArgument(bucketed.MarkReady(99)));
  });
}

std::vector<float> Fill(size_t n, int seed) {
  std::vector<float> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = float((i * 7 + seed * 3) % 11) - 5.0f;
  return v;
}

void PlainGemm(const float* a, const float* b, float* c, int m, int k, int n) {
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, n, k, 1, a, k, b, n, 0, c, n);
}

TEST_P(Overlap, AllGatherMatmulMatchesAllGatherThenGemm) {
  RunRanks(GetParam(), Layout::kOneNode, TestOptions(), [](Communicator& c) {
    const int p = c.size(), m_local = 13, k = 17, n = 9;
    auto x = Fill(m_local * k, c.rank()), w = Fill(k * n, 42);
    std::vector<float> y(p * m_local * n), x_all(p * m_local * k), want(p * m_local * n);
    ASSERT_TRUE(overlap::AllGatherMatmul(c, x.data(), m_local, k, w.data(), n, y.data(), {3}).ok());
    ASSERT_TRUE(c.AllGather(x.data(), x_all.data(), x.size(), DataType::kF32).ok());
    PlainGemm(x_all.data(), w.data(), want.data(), p * m_local, k, n);
    EXPECT_EQ(y, want);
  });
}

TEST_P(Overlap, MatmulReduceScatterMatchesGemmThenReduceScatter) {
  RunRanks(GetParam(), Layout::kOneNode, TestOptions(), [](Communicator& c) {
    const int p = c.size(), m = 12 * p, k_local = 8, n = 10;
    auto x = Fill(m * k_local, c.rank()), w = Fill(k_local * n, c.rank() + 5);
    std::vector<float> y(m / p * n), full(m * n), want(m / p * n);
    ASSERT_TRUE(
        overlap::MatmulReduceScatter(c, x.data(), m, k_local, w.data(), n, y.data(), {4}).ok());
    PlainGemm(x.data(), w.data(), full.data(), m, k_local, n);
    ASSERT_TRUE(c.ReduceScatter(full.data(), want.data(), m / p * n, DataType::kF32,
                                ReduceOp::kSum).ok());
    EXPECT_EQ(y, want);
  });
}

// w_transposed multiplies by the transpose of an n x k matrix, bit for bit
// what the plain call gives with that transpose copied out.
TEST_P(Overlap, TransposedWeightMatchesCopiedTranspose) {
  RunRanks(GetParam(), Layout::kOneNode, TestOptions(), [](Communicator& c) {
    const int p = c.size(), m_local = 6, k = 7, n = 5;
    auto x = Fill(p * m_local * k, c.rank()), w_nk = Fill(n * k, 3);
    std::vector<float> w_kn(k * n);
    for (int i = 0; i < n; ++i) {
      for (int j = 0; j < k; ++j) w_kn[j * n + i] = w_nk[i * k + j];
    }
    const overlap::CollectiveMatmulOptions plain{2}, transposed{2, true};
    std::vector<float> got(p * m_local * n), want(p * m_local * n);
    ASSERT_TRUE(overlap::AllGatherMatmul(c, x.data(), m_local, k, w_nk.data(), n, got.data(),
                                         transposed).ok());
    ASSERT_TRUE(
        overlap::AllGatherMatmul(c, x.data(), m_local, k, w_kn.data(), n, want.data(), plain).ok());
    EXPECT_EQ(got, want);
    std::vector<float> rs_got(m_local * n), rs_want(m_local * n);
    ASSERT_TRUE(overlap::MatmulReduceScatter(c, x.data(), p * m_local, k, w_nk.data(), n,
                                             rs_got.data(), transposed).ok());
    ASSERT_TRUE(overlap::MatmulReduceScatter(c, x.data(), p * m_local, k, w_kn.data(), n,
                                             rs_want.data(), plain).ok());
    EXPECT_EQ(rs_got, rs_want);
  });
}

INSTANTIATE_TEST_SUITE_P(Worlds, Overlap, ::testing::Values(1, 2, 3));

}  // namespace
}  // namespace sublet::collectives::testing

#include "collectives/overlap/collective_matmul.h"

#include <cblas.h>

#include <cstring>
#include <vector>

#include "absl/strings/str_cat.h"
#include "collectives/internal/numeric.h"
#include "common/status.h"

namespace sublet::collectives::overlap {
namespace {

// C (rows x n) = A (rows x k) * B (k x n), row-major; B is stored n x k
// when `b_transposed`.
void Gemm(const float* a, const float* b, float* c, int64_t rows, int64_t k, int64_t n,
          bool b_transposed) {
  if (rows == 0 || n == 0) return;
  if (k == 0) {
    std::memset(c, 0, sizeof(float) * rows * n);
    return;
  }
  cblas_sgemm(CblasRowMajor, CblasNoTrans, b_transposed ? CblasTrans : CblasNoTrans,
              static_cast<int>(rows), static_cast<int>(n), static_cast<int>(k), 1.0f, a,
              static_cast<int>(k), b, static_cast<int>(b_transposed ? k : n), 0.0f, c,
              static_cast<int>(n));
}

absl::Status CheckChunks(int chunks) {
  if (chunks >= 1) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat("collective matmul: chunks is ", chunks));
}

}  // namespace

absl::Status AllGatherMatmul(Communicator& comm, const float* x_local, int64_t m_local, int64_t k,
                             const float* w, int64_t n, float* y,
                             const CollectiveMatmulOptions& options, float* x_all) {
  SUBLET_RETURN_IF_ERROR(CheckChunks(options.chunks));
  const int p = comm.size();
  const size_t c = static_cast<size_t>(options.chunks);
  std::vector<std::vector<float>> gathered(c);
  std::vector<WorkPtr> work(c);
  auto start = [&](size_t j) {
    Range r = ChunkOf(static_cast<size_t>(m_local), c, j, 1);
    gathered[j].resize(r.size() * k * p);
    work[j] = comm.AllGatherAsync(x_local + r.begin * k, gathered[j].data(), r.size() * k,
                                  DataType::kF32);
  };
  start(0);
  for (size_t j = 0; j < c; ++j) {
    if (j + 1 < c) start(j + 1);
    SUBLET_RETURN_IF_ERROR(work[j]->Wait());
    Range r = ChunkOf(static_cast<size_t>(m_local), c, j, 1);
    for (int q = 0; q < p; ++q) {
      const float* block = gathered[j].data() + q * r.size() * k;
      Gemm(block, w, y + (q * m_local + r.begin) * n, static_cast<int64_t>(r.size()), k, n,
           options.w_transposed);
      if (x_all != nullptr) {
        std::memcpy(x_all + (q * m_local + r.begin) * k, block, sizeof(float) * r.size() * k);
      }
    }
  }
  return absl::OkStatus();
}

absl::Status MatmulReduceScatter(Communicator& comm, const float* x, int64_t m, int64_t k_local,
                                 const float* w, int64_t n, float* y,
                                 const CollectiveMatmulOptions& options) {
  SUBLET_RETURN_IF_ERROR(CheckChunks(options.chunks));
  const int p = comm.size();
  if (m % p != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("matmul reduce-scatter: m=", m, " is not a multiple of ", p, " ranks"));
  }
  const int64_t block = m / p;
  const size_t c = static_cast<size_t>(options.chunks);
  std::vector<std::vector<float>> partial(c), mine(c);
  std::vector<WorkPtr> work(c);
  for (size_t j = 0; j < c; ++j) {
    Range r = ChunkOf(static_cast<size_t>(block), c, j, 1);
    partial[j].resize(r.size() * n * p);
    mine[j].resize(r.size() * n);
    for (int q = 0; q < p; ++q) {
      Gemm(x + (q * block + r.begin) * k_local, w, partial[j].data() + q * r.size() * n,
           static_cast<int64_t>(r.size()), k_local, n, options.w_transposed);
    }
    work[j] = comm.ReduceScatterAsync(partial[j].data(), mine[j].data(), r.size() * n,
                                      DataType::kF32, ReduceOp::kSum);
  }
  for (size_t j = 0; j < c; ++j) {
    SUBLET_RETURN_IF_ERROR(work[j]->Wait());
    Range r = ChunkOf(static_cast<size_t>(block), c, j, 1);
    std::memcpy(y + r.begin * n, mine[j].data(), sizeof(float) * r.size() * n);
  }
  return absl::OkStatus();
}

}  // namespace sublet::collectives::overlap

// Device code for kernels.h: the training layers' elementwise and row work.
// Row kernels run one block per row; each thread takes a strided slice of the
// row and the block combines the slices with a fixed shared-memory tree, so
// the sums are deterministic. The arithmetic is element_math.h's.
#include "worker/train/cuda/kernels.h"

namespace sublet::train::cuda {
namespace {

constexpr int kThreads = 256;  // a power of two (BlockReduce halves it)
constexpr int64_t kMaxBlocks = 4096;

unsigned Blocks(int64_t n) {
  const int64_t b = (n + kThreads - 1) / kThreads;
  return static_cast<unsigned>(b < kMaxBlocks ? b : kMaxBlocks);
}

// One block per row.
unsigned RowBlocks(int64_t rows) { return static_cast<unsigned>(rows); }

// Grid-stride loop over [0, n).
#define SUBLET_FOR_EACH(i, n)                                                     \
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; \
       i < (n); i += static_cast<int64_t>(gridDim.x) * blockDim.x)

struct SumOp {
  __device__ double operator()(double a, double b) const { return a + b; }
};
struct MaxOp {
  __device__ float operator()(float a, float b) const { return b > a ? b : a; }
};

// Combines one value per thread of the block; every thread gets the result.
template <typename T, typename Op>
__device__ T BlockReduce(T v, Op op) {
  __shared__ T scratch[kThreads];
  __syncthreads();  // a previous reduction's readers are done with scratch
  scratch[threadIdx.x] = v;
  __syncthreads();
  for (int half = kThreads / 2; half > 0; half /= 2) {
    if (static_cast<int>(threadIdx.x) < half) {
      scratch[threadIdx.x] = op(scratch[threadIdx.x], scratch[threadIdx.x + half]);
    }
    __syncthreads();
  }
  return scratch[0];
}

__device__ double BlockSum(double v) { return BlockReduce(v, SumOp{}); }

__device__ float BlockMax(const float* row, int64_t n) {
  float m = row[0];
  for (int64_t j = threadIdx.x; j < n; j += blockDim.x) m = row[j] > m ? row[j] : m;
  return BlockReduce(m, MaxOp{});
}

__global__ void LayerNormForwardKernel(const float* x, const float* gamma, const float* beta,
                                       float eps, float* y, float* mean_out, float* rstd_out,
                                       int64_t d) {
  const float* xr = x + blockIdx.x * d;
  float* yr = y + blockIdx.x * d;
  double part = 0.0;
  for (int64_t i = threadIdx.x; i < d; i += blockDim.x) part += xr[i];
  const double mean = BlockSum(part) / d;
  part = 0.0;
  for (int64_t i = threadIdx.x; i < d; i += blockDim.x) part += (xr[i] - mean) * (xr[i] - mean);
  const double rstd = math::LayerNormRstd(BlockSum(part), d, eps);
  for (int64_t i = threadIdx.x; i < d; i += blockDim.x) {
    yr[i] = math::LayerNormOutput(xr[i], mean, rstd, gamma[i], beta[i]);
  }
  if (threadIdx.x == 0) {
    mean_out[blockIdx.x] = static_cast<float>(mean);
    rstd_out[blockIdx.x] = static_cast<float>(rstd);
  }
}

__global__ void LayerNormInputGradKernel(const float* x, const float* dy, const float* gamma,
                                         const float* mean_in, const float* rstd_in, float* dx,
                                         int64_t d) {
  const int64_t off = blockIdx.x * d;
  const double mean = mean_in[blockIdx.x], rstd = rstd_in[blockIdx.x];
  double g_part = 0.0, gx_part = 0.0;
  for (int64_t i = threadIdx.x; i < d; i += blockDim.x) {
    const double g = static_cast<double>(dy[off + i]) * gamma[i];
    g_part += g;
    gx_part += g * math::LayerNormXhat(x[off + i], mean, rstd);
  }
  const double g_mean = BlockSum(g_part) / d;
  const double gx_mean = BlockSum(gx_part) / d;
  for (int64_t i = threadIdx.x; i < d; i += blockDim.x) {
    const double xhat = math::LayerNormXhat(x[off + i], mean, rstd);
    const double g = static_cast<double>(dy[off + i]) * gamma[i];
    dx[off + i] = math::LayerNormInputGrad(rstd, g, g_mean, xhat, gx_mean);
  }
}

// One thread per feature, rows in order (the host's accumulation order).
__global__ void LayerNormParamGradKernel(const float* x, const float* dy, const float* mean_in,
                                         const float* rstd_in, float* dgamma, float* dbeta,
                                         int64_t rows, int64_t d) {
  SUBLET_FOR_EACH(i, d) {
    float dg = dgamma[i], db = dbeta[i];
    for (int64_t r = 0; r < rows; ++r) {
      const double xhat = math::LayerNormXhat(x[r * d + i], mean_in[r], rstd_in[r]);
      dg += static_cast<float>(dy[r * d + i] * xhat);
      db += dy[r * d + i];
    }
    dgamma[i] = dg;
    dbeta[i] = db;
  }
}

__global__ void GeluForwardKernel(const float* x, float* y, int64_t n) {
  SUBLET_FOR_EACH(i, n) y[i] = math::GeluForwardAt(x[i]);
}

__global__ void GeluBackwardKernel(const float* x, const float* dy, float* dx, int64_t n) {
  SUBLET_FOR_EACH(i, n) dx[i] = math::GeluBackwardAt(x[i], dy[i]);
}

__global__ void BroadcastRowsKernel(const float* b, float* y, int64_t rows, int64_t cols) {
  SUBLET_FOR_EACH(i, rows * cols) y[i] = b[i % cols];
}

__global__ void ColumnSumAddKernel(const float* dy, float* db, int64_t rows, int64_t cols) {
  SUBLET_FOR_EACH(c, cols) {
    float acc = db[c];
    for (int64_t r = 0; r < rows; ++r) acc += dy[r * cols + c];
    db[c] = acc;
  }
}

__global__ void AddIntoKernel(const float* a, float* out, int64_t n) {
  SUBLET_FOR_EACH(i, n) out[i] += a[i];
}

__global__ void ScaleKernel(float* x, int64_t n, float factor) {
  SUBLET_FOR_EACH(i, n) x[i] *= factor;
}

// i indexes the head-major tensor [batch, heads, seq, hd].
__device__ int64_t RowIndex(int64_t i, HeadLayout l, int64_t ld, int64_t col0) {
  const int64_t e = i % l.head_dim, t = (i / l.head_dim) % l.seq;
  const int64_t h = (i / (l.head_dim * l.seq)) % l.heads, b = i / (l.head_dim * l.seq * l.heads);
  return (b * l.seq + t) * ld + col0 + h * l.head_dim + e;
}

__global__ void RowsToHeadsKernel(const float* rows, int64_t ld, int64_t col0, HeadLayout l,
                                  float* heads) {
  SUBLET_FOR_EACH(i, l.batch * l.heads * l.seq * l.head_dim) {
    heads[i] = rows[RowIndex(i, l, ld, col0)];
  }
}

__global__ void HeadsToRowsKernel(const float* heads, HeadLayout l, float* rows, int64_t ld,
                                  int64_t col0) {
  SUBLET_FOR_EACH(i, l.batch * l.heads * l.seq * l.head_dim) {
    rows[RowIndex(i, l, ld, col0)] = heads[i];
  }
}

__global__ void CausalSoftmaxKernel(float* scores, int64_t seq) {
  float* row = scores + blockIdx.x * seq;
  const int64_t q = blockIdx.x % seq;  // the query position of this row
  const float max = BlockMax(row, q + 1);
  double part = 0.0;
  for (int64_t j = threadIdx.x; j <= q; j += blockDim.x) {
    row[j] = math::SoftmaxExp(row[j], max);
    part += row[j];
  }
  const float inv = math::SoftmaxInverse(BlockSum(part));
  for (int64_t j = threadIdx.x; j < seq; j += blockDim.x) {
    row[j] = math::CausalVisible(q, j) ? row[j] * inv : 0.0f;
  }
}

__global__ void SoftmaxBackwardKernel(const float* p, float* dp, int64_t n, float scale) {
  const float* pr = p + blockIdx.x * n;
  float* dr = dp + blockIdx.x * n;
  double part = 0.0;
  for (int64_t j = threadIdx.x; j < n; j += blockDim.x) part += static_cast<double>(dr[j]) * pr[j];
  const double dot = BlockSum(part);
  for (int64_t j = threadIdx.x; j < n; j += blockDim.x) {
    dr[j] = math::SoftmaxBackwardAt(pr[j], dr[j], dot, scale);
  }
}

__global__ void CrossEntropyForwardKernel(const float* logits, const int32_t* targets,
                                          float* probs, double* row_loss, int64_t vocab) {
  const float* l = logits + blockIdx.x * vocab;
  float* p = probs + blockIdx.x * vocab;
  const float max = BlockMax(l, vocab);
  double part = 0.0;
  for (int64_t j = threadIdx.x; j < vocab; j += blockDim.x) {
    p[j] = math::SoftmaxExp(l[j], max);
    part += p[j];
  }
  const double sum = BlockSum(part);
  const float inv = math::SoftmaxInverse(sum);
  for (int64_t j = threadIdx.x; j < vocab; j += blockDim.x) p[j] *= inv;
  if (threadIdx.x == 0) {
    row_loss[blockIdx.x] = math::CrossEntropyRowLoss(sum, max, l[targets[blockIdx.x]]);
  }
}

__global__ void CrossEntropyBackwardKernel(const float* probs, const int32_t* targets,
                                           float* dlogits, int64_t rows, int64_t vocab,
                                           float inv_rows, float scale) {
  SUBLET_FOR_EACH(i, rows * vocab) {
    const int64_t r = i / vocab, j = i % vocab;
    dlogits[i] = math::CrossEntropyGradAt(probs[i], j == targets[r], inv_rows) * scale;
  }
}

__global__ void EmbeddingForwardKernel(const int32_t* tokens, const float* wte, const float* wpe,
                                       float* y, int64_t rows, int64_t seq, int64_t width) {
  SUBLET_FOR_EACH(i, rows * width) {
    const int64_t r = i / width, c = i % width;
    y[i] = wte[tokens[r] * width + c] + wpe[(r % seq) * width + c];
  }
}

// One thread per feature column walks the rows in order: repeated tokens add
// up without atomics, in the host's order.
__global__ void EmbeddingBackwardKernel(const int32_t* tokens, const float* dy, float* dwte,
                                        float* dwpe, int64_t rows, int64_t seq, int64_t width) {
  SUBLET_FOR_EACH(c, width) {
    for (int64_t r = 0; r < rows; ++r) {
      const float g = dy[r * width + c];
      dwte[tokens[r] * width + c] += g;
      dwpe[(r % seq) * width + c] += g;
    }
  }
}

__global__ void SumSquaresKernel(const float* x, int64_t n, double* acc) {
  double part = 0.0;
  SUBLET_FOR_EACH(i, n) part += static_cast<double>(x[i]) * x[i];
  const double block = BlockSum(part);
  if (threadIdx.x == 0) atomicAdd(acc, block);
}

__global__ void AdamWKernel(math::AdamWScalars s, const float* g, float* m, float* v, float* p,
                            int64_t n) {
  SUBLET_FOR_EACH(i, n) math::AdamWStep(s, g[i], &m[i], &v[i], &p[i]);
}

}  // namespace

cudaError_t LayerNormForward(const float* x, const float* gamma, const float* beta, float eps,
                             float* y, float* mean, float* rstd, int64_t rows, int64_t d,
                             cudaStream_t s) {
  if (rows == 0) return cudaSuccess;
  LayerNormForwardKernel<<<RowBlocks(rows), kThreads, 0, s>>>(x, gamma, beta, eps, y, mean, rstd, d);
  return cudaGetLastError();
}

cudaError_t LayerNormBackward(const float* x, const float* dy, const float* gamma,
                              const float* mean, const float* rstd, float* dx, float* dgamma,
                              float* dbeta, int64_t rows, int64_t d, cudaStream_t s) {
  if (rows == 0) return cudaSuccess;
  LayerNormInputGradKernel<<<RowBlocks(rows), kThreads, 0, s>>>(x, dy, gamma, mean, rstd, dx, d);
  LayerNormParamGradKernel<<<Blocks(d), kThreads, 0, s>>>(x, dy, mean, rstd, dgamma, dbeta, rows,
                                                          d);
  return cudaGetLastError();
}

cudaError_t GeluForward(const float* x, float* y, int64_t n, cudaStream_t s) {
  if (n == 0) return cudaSuccess;
  GeluForwardKernel<<<Blocks(n), kThreads, 0, s>>>(x, y, n);
  return cudaGetLastError();
}

cudaError_t GeluBackward(const float* x, const float* dy, float* dx, int64_t n, cudaStream_t s) {
  if (n == 0) return cudaSuccess;
  GeluBackwardKernel<<<Blocks(n), kThreads, 0, s>>>(x, dy, dx, n);
  return cudaGetLastError();
}

cudaError_t BroadcastRows(const float* b, float* y, int64_t rows, int64_t cols, cudaStream_t s) {
  if (rows * cols == 0) return cudaSuccess;
  BroadcastRowsKernel<<<Blocks(rows * cols), kThreads, 0, s>>>(b, y, rows, cols);
  return cudaGetLastError();
}

cudaError_t ColumnSumAdd(const float* dy, float* db, int64_t rows, int64_t cols, cudaStream_t s) {
  if (cols == 0) return cudaSuccess;
  ColumnSumAddKernel<<<Blocks(cols), kThreads, 0, s>>>(dy, db, rows, cols);
  return cudaGetLastError();
}

cudaError_t AddInto(const float* a, float* out, int64_t n, cudaStream_t s) {
  if (n == 0) return cudaSuccess;
  AddIntoKernel<<<Blocks(n), kThreads, 0, s>>>(a, out, n);
  return cudaGetLastError();
}

cudaError_t Scale(float* x, int64_t n, float factor, cudaStream_t s) {
  if (n == 0) return cudaSuccess;
  ScaleKernel<<<Blocks(n), kThreads, 0, s>>>(x, n, factor);
  return cudaGetLastError();
}

cudaError_t RowsToHeads(const float* rows, int64_t ld, int64_t col0, const HeadLayout& l,
                        float* heads, cudaStream_t s) {
  const int64_t n = l.batch * l.heads * l.seq * l.head_dim;
  if (n == 0) return cudaSuccess;
  RowsToHeadsKernel<<<Blocks(n), kThreads, 0, s>>>(rows, ld, col0, l, heads);
  return cudaGetLastError();
}

cudaError_t HeadsToRows(const float* heads, const HeadLayout& l, float* rows, int64_t ld,
                        int64_t col0, cudaStream_t s) {
  const int64_t n = l.batch * l.heads * l.seq * l.head_dim;
  if (n == 0) return cudaSuccess;
  HeadsToRowsKernel<<<Blocks(n), kThreads, 0, s>>>(heads, l, rows, ld, col0);
  return cudaGetLastError();
}

cudaError_t CausalSoftmax(float* scores, int64_t n_rows, int64_t seq, cudaStream_t s) {
  if (n_rows == 0) return cudaSuccess;
  CausalSoftmaxKernel<<<RowBlocks(n_rows), kThreads, 0, s>>>(scores, seq);
  return cudaGetLastError();
}

cudaError_t SoftmaxBackward(const float* p, float* dp, int64_t n_rows, int64_t n, float scale,
                            cudaStream_t s) {
  if (n_rows == 0) return cudaSuccess;
  SoftmaxBackwardKernel<<<RowBlocks(n_rows), kThreads, 0, s>>>(p, dp, n, scale);
  return cudaGetLastError();
}

cudaError_t CrossEntropyForward(const float* logits, const int32_t* targets, float* probs,
                                double* row_loss, int64_t rows, int64_t vocab, cudaStream_t s) {
  if (rows == 0) return cudaSuccess;
  CrossEntropyForwardKernel<<<RowBlocks(rows), kThreads, 0, s>>>(logits, targets, probs, row_loss, vocab);
  return cudaGetLastError();
}

cudaError_t CrossEntropyBackward(const float* probs, const int32_t* targets, float* dlogits,
                                 int64_t rows, int64_t vocab, float scale, cudaStream_t s) {
  if (rows * vocab == 0) return cudaSuccess;
  const float inv_rows = 1.0f / static_cast<float>(rows);
  CrossEntropyBackwardKernel<<<Blocks(rows * vocab), kThreads, 0, s>>>(probs, targets, dlogits,
                                                                      rows, vocab, inv_rows, scale);
  return cudaGetLastError();
}

cudaError_t EmbeddingForward(const int32_t* tokens, const float* wte, const float* wpe, float* y,
                             int64_t rows, int64_t seq, int64_t width, cudaStream_t s) {
  if (rows * width == 0) return cudaSuccess;
  EmbeddingForwardKernel<<<Blocks(rows * width), kThreads, 0, s>>>(tokens, wte, wpe, y, rows, seq,
                                                                  width);
  return cudaGetLastError();
}

cudaError_t EmbeddingBackward(const int32_t* tokens, const float* dy, float* dwte, float* dwpe,
                              int64_t rows, int64_t seq, int64_t width, cudaStream_t s) {
  if (width == 0) return cudaSuccess;
  EmbeddingBackwardKernel<<<Blocks(width), kThreads, 0, s>>>(tokens, dy, dwte, dwpe, rows, seq,
                                                            width);
  return cudaGetLastError();
}

cudaError_t SumSquares(const float* x, int64_t n, double* acc, cudaStream_t s) {
  if (n == 0) return cudaSuccess;
  SumSquaresKernel<<<Blocks(n), kThreads, 0, s>>>(x, n, acc);
  return cudaGetLastError();
}

cudaError_t AdamW(const math::AdamWScalars& scalars, const float* g, float* m, float* v, float* p,
                  int64_t n, cudaStream_t s) {
  if (n == 0) return cudaSuccess;
  AdamWKernel<<<Blocks(n), kThreads, 0, s>>>(scalars, g, m, v, p, n);
  return cudaGetLastError();
}

}  // namespace sublet::train::cuda

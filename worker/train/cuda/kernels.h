// Launchers for the elementwise and row kernels of the device GPT model
// (kernels.cu). Each kernel computes what a host layer computes, through the
// element functions of worker/train/element_math.h. Pointers are device
// memory, layouts are the host layers' (row-major, rows batch-major), and every
// launch is asynchronous on `s`, returning the launch error (cudaSuccess when
// there is nothing to do). Private to worker/train/cuda/; built only with the
// CUDA toolkit.
//
// Determinism: row kernels reduce in a fixed tree order, and every
// column-wise accumulation (bias and LayerNorm gains, embedding scatter) is
// one thread per column walking the rows in order, as the host does, so a run
// repeats bit for bit and the accumulations match the host's exactly.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "worker/train/element_math.h"

namespace sublet::train::cuda {

// y = LayerNorm(x) over rows of d; mean, rstd: [rows].
cudaError_t LayerNormForward(const float* x, const float* gamma, const float* beta, float eps,
                             float* y, float* mean, float* rstd, int64_t rows, int64_t d,
                             cudaStream_t s);
// dx (overwritten), dgamma and dbeta (accumulated).
cudaError_t LayerNormBackward(const float* x, const float* dy, const float* gamma,
                              const float* mean, const float* rstd, float* dx, float* dgamma,
                              float* dbeta, int64_t rows, int64_t d, cudaStream_t s);

cudaError_t GeluForward(const float* x, float* y, int64_t n, cudaStream_t s);
cudaError_t GeluBackward(const float* x, const float* dy, float* dx, int64_t n, cudaStream_t s);

// y[r][c] = b[c]: the bias under a linear layer's GEMM (beta = 1).
cudaError_t BroadcastRows(const float* b, float* y, int64_t rows, int64_t cols, cudaStream_t s);
// db[c] += sum over rows of dy[r][c].
cudaError_t ColumnSumAdd(const float* dy, float* db, int64_t rows, int64_t cols, cudaStream_t s);
// out[i] += a[i].
cudaError_t AddInto(const float* a, float* out, int64_t n, cudaStream_t s);
// x[i] *= factor.
cudaError_t Scale(float* x, int64_t n, float factor, cudaStream_t s);

// Between the row layout [batch * seq, ld] (head h at columns col0 + h * hd)
// and the head-major layout [batch, heads, seq, hd] that one strided-batched
// GEMM over batch * heads reads.
struct HeadLayout {
  int64_t batch, seq, heads, head_dim;
};
cudaError_t RowsToHeads(const float* rows, int64_t ld, int64_t col0, const HeadLayout& l,
                        float* heads, cudaStream_t s);
cudaError_t HeadsToRows(const float* heads, const HeadLayout& l, float* rows, int64_t ld,
                        int64_t col0, cudaStream_t s);

// Scores [n_rows / seq blocks of seq x seq] in place: causal softmax per row.
cudaError_t CausalSoftmax(float* scores, int64_t n_rows, int64_t seq, cudaStream_t s);
// dS over dP in place: rows of n.
cudaError_t SoftmaxBackward(const float* p, float* dp, int64_t n_rows, int64_t n, float scale,
                            cudaStream_t s);

// probs = softmax(logits) per row, row_loss[r] = the row's cross-entropy.
// Targets must already be validated to lie in [0, vocab).
cudaError_t CrossEntropyForward(const float* logits, const int32_t* targets, float* probs,
                                double* row_loss, int64_t rows, int64_t vocab, cudaStream_t s);
// dlogits = gradient of the mean loss over rows, times `scale`.
cudaError_t CrossEntropyBackward(const float* probs, const int32_t* targets, float* dlogits,
                                 int64_t rows, int64_t vocab, float scale, cudaStream_t s);

// y[r] = wte[tokens[r]] + wpe[r % seq]; tokens validated.
cudaError_t EmbeddingForward(const int32_t* tokens, const float* wte, const float* wpe, float* y,
                             int64_t rows, int64_t seq, int64_t width, cudaStream_t s);
// dwte[tokens[r]] += dy[r], dwpe[r % seq] += dy[r].
cudaError_t EmbeddingBackward(const int32_t* tokens, const float* dy, float* dwte, float* dwpe,
                              int64_t rows, int64_t seq, int64_t width, cudaStream_t s);

// *acc += sum of x[i]^2 (acc is device memory, zeroed by the caller).
cudaError_t SumSquares(const float* x, int64_t n, double* acc, cudaStream_t s);
cudaError_t AdamW(const math::AdamWScalars& scalars, const float* g, float* m, float* v, float* p,
                  int64_t n, cudaStream_t s);

}  // namespace sublet::train::cuda

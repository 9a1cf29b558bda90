// Building blocks of DeviceGptModel, private to worker/train/cuda/: status
// wrappers for CUDA and cuBLAS errors, an owning device array, row-major
// GEMMs on cuBLAS, and the device versions of the host layers whose work is
// mostly GEMMs (linear.h, attention.h). Same conventions as the host layers
// (row-major, input gradients overwritten, parameter gradients accumulated),
// on raw device pointers; shapes are the caller's responsibility, since the
// model checks every shape once, on the host, before anything is launched.
// All work is queued on Device::stream.
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "absl/status/status.h"
#include "worker/train/cuda/kernels.h"
#include "worker/train/gemm.h"

namespace sublet::train::cuda {

// Internal "<what>: <CUDA error string>" when e is not cudaSuccess.
absl::Status CudaCheck(const char* what, cudaError_t e);
absl::Status CublasCheck(const char* what, cublasStatus_t s);

// n elements of T in device memory; freed on destruction. Move-only.
template <typename T>
class DeviceArray {
 public:
  DeviceArray() = default;
  ~DeviceArray() { Free(); }
  DeviceArray(DeviceArray&& o) noexcept : ptr_(o.ptr_), n_(o.n_) { o.ptr_ = nullptr, o.n_ = 0; }
  DeviceArray& operator=(DeviceArray&& o) noexcept {
    if (this != &o) {
      Free();
      ptr_ = o.ptr_, n_ = o.n_;
      o.ptr_ = nullptr, o.n_ = 0;
    }
    return *this;
  }

  // Replaces the contents with n zeroed elements.
  absl::Status Allocate(int64_t n) {
    Free();
    if (n == 0) return absl::OkStatus();
    void* p = nullptr;
    if (auto s = CudaCheck("cudaMalloc", cudaMalloc(&p, sizeof(T) * n)); !s.ok()) return s;
    ptr_ = static_cast<T*>(p);
    n_ = n;
    return CudaCheck("cudaMemset", cudaMemset(ptr_, 0, sizeof(T) * n));
  }

  T* get() const { return ptr_; }
  int64_t size() const { return n_; }

 private:
  void Free() {
    if (ptr_ != nullptr) cudaFree(ptr_);  // an error here has no one to tell
    ptr_ = nullptr;
    n_ = 0;
  }
  T* ptr_ = nullptr;
  int64_t n_ = 0;
};

struct Device {
  cudaStream_t stream = nullptr;
  cublasHandle_t blas = nullptr;
};

// Row-major C = alpha * op(A) * op(B) + beta * C, as worker/train/gemm.h.
absl::Status Gemm(const Device& d, Trans ta, Trans tb, int64_t m, int64_t n, int64_t k,
                  float alpha, const float* a, int64_t lda, const float* b, int64_t ldb,
                  float beta, float* c, int64_t ldc);

// `batch` independent row-major GEMMs, operand i at base + i * stride.
struct Strided {
  const float* p;
  int64_t ld, stride;
};
absl::Status GemmBatched(const Device& d, Trans ta, Trans tb, int64_t m, int64_t n, int64_t k,
                         float alpha, Strided a, Strided b, float beta, float* c, int64_t ldc,
                         int64_t stride_c, int64_t batch);

// y[rows, out] = x[rows, in] * w[in, out] + b.
absl::Status LinearForward(const Device& d, const float* x, const float* w, const float* b,
                           int64_t rows, int64_t in, int64_t out, float* y);
// dx = dy * w^T; dw += x^T * dy; db += colsum(dy).
absl::Status LinearBackward(const Device& d, const float* x, const float* w, const float* dy,
                            int64_t rows, int64_t in, int64_t out, float* dx, float* dw,
                            float* db);

// Causal attention on head-major q, k, v ([batch * heads, seq, head_dim]):
// probs [batch * heads, seq, seq], y head-major.
absl::Status AttentionForward(const Device& d, const HeadLayout& l, const float* q,
                              const float* k, const float* v, float* probs, float* y);
// dq, dk, dv head-major (overwritten); ds is seq x seq scratch per head.
absl::Status AttentionBackward(const Device& d, const HeadLayout& l, const float* q,
                               const float* k, const float* v, const float* probs,
                               const float* dy, float* ds, float* dq, float* dk, float* dv);

}  // namespace sublet::train::cuda

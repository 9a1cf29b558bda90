// The CUDA twin of GptModel (worker/train/gpt.h): the same model, forward,
// backward and AdamW step, on one GPU. GEMMs go through cuBLAS (cublasSgemm
// for the linears and the tied head, cublasSgemmStridedBatched over
// batch x heads for attention); everything else is the kernels of kernels.h,
// whose arithmetic is element_math.h's, shared with the host layers.
//
// Scope: one device, no tensor parallelism (params.tp must be 1). The
// results follow the host model to float rounding: GEMMs sum in a different
// order, tanhf/expf differ by a few ulp, and row sums are reduced as a tree;
// column accumulations (bias, LayerNorm and embedding gradients) use the
// host's order. Loss scaling and gradient accumulation are GptModel's:
// Forward returns the SUM of token losses, Backward adds loss_scale times its
// gradient into the device gradients.
//
// Availability: compiled only when CMake finds nvcc (SUBLET_HAVE_CUDA). In a
// build without CUDA, or on a machine without a usable device, Create and
// CudaDeviceCount return FailedPrecondition "no CUDA device: <why>"; nothing
// crashes or aborts.
//
// Use (what a --device cuda trainer would do per step, single rank):
//   auto model = DeviceGptModel::Create(params);       // uploads, zero grads
//   for each micro-batch: Forward(mb); Backward(1 / tokens of the batch);
//   Step(adamw, t, lr, /*max_norm=*/1.0);               // clip, update, zero
//   Download(&params) before a checkpoint.
//
// Not thread-safe; one model owns its device buffers and cuBLAS handle.
#pragma once

#include <cstdint>
#include <memory>

#include "absl/status/statusor.h"
#include "worker/train/adamw.h"
#include "worker/train/gpt.h"
#include "worker/train/gpt_params.h"

namespace sublet::train::cuda {

// The number of CUDA devices, or FailedPrecondition "no CUDA device: ..."
// naming the cause (none present, driver missing, built without CUDA).
absl::StatusOr<int> CudaDeviceCount();

class DeviceGptModel {
 public:
  // Uploads `params` (values; gradients and AdamW moments start at zero) to
  // `device`. InvalidArgument when params.tp != 1.
  static absl::StatusOr<std::unique_ptr<DeviceGptModel>> Create(const GptParams& params,
                                                                int device = 0);
  ~DeviceGptModel();
  DeviceGptModel(const DeviceGptModel&) = delete;
  DeviceGptModel& operator=(const DeviceGptModel&) = delete;

  // The sum of the cross-entropy over the micro-batch's tokens. Tokens and
  // targets are validated on the host (InvalidArgument) before upload.
  absl::StatusOr<double> Forward(const MicroBatch& batch);

  // Backward of the last Forward; gradients accumulate on the device.
  absl::Status Backward(float loss_scale);

  // Clips the gradients to global norm `max_norm` (ClipFactor), applies
  // AdamW for 1-based step `t` and zeroes the gradients. Returns the clip
  // factor used.
  absl::StatusOr<float> Step(const AdamWOptions& options, int64_t t, float lr, double max_norm);

  // Copies the device values and gradients into `params`, which must have
  // the layout Create was given.
  absl::Status Download(GptParams* params) const;

  struct Impl;  // public only so that the implementation files can name it

 private:
  explicit DeviceGptModel(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace sublet::train::cuda

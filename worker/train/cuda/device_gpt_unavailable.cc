// Stand-in for device_gpt.cc when nvcc was not found at configure time: every
// entry point says why there is no device model, nothing aborts.
#include "worker/train/cuda/device_gpt.h"

namespace sublet::train::cuda {

absl::StatusOr<int> CudaDeviceCount() {
  return absl::FailedPreconditionError(
      "no CUDA device: Sublet was built without CUDA (nvcc was not found at configure time)");
}

struct DeviceGptModel::Impl {};

DeviceGptModel::DeviceGptModel(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
DeviceGptModel::~DeviceGptModel() = default;

absl::StatusOr<std::unique_ptr<DeviceGptModel>> DeviceGptModel::Create(const GptParams&, int) {
  return CudaDeviceCount().status();
}

absl::StatusOr<double> DeviceGptModel::Forward(const MicroBatch&) {
  return CudaDeviceCount().status();
}

absl::Status DeviceGptModel::Backward(float) { return CudaDeviceCount().status(); }

absl::StatusOr<float> DeviceGptModel::Step(const AdamWOptions&, int64_t, float, double) {
  return CudaDeviceCount().status();
}

absl::Status DeviceGptModel::Download(GptParams*) const { return CudaDeviceCount().status(); }

}  // namespace sublet::train::cuda

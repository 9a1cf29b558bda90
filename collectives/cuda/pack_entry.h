// A gradient's place in a flat bucket; shared by kernels.cu and its callers.
#pragma once

#include <cstddef>

namespace sublet::collectives::cuda {

struct PackEntry {
  void* gradient;
  size_t bytes;
  size_t offset;  // bytes into the bucket
};

}  // namespace sublet::collectives::cuda

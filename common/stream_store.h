// Copies with non-temporal (streaming) stores: for destinations that will
// not be read again soon (a checkpoint's staging buffers, an optimizer's
// output for the next step), so the copy neither evicts the caller's working
// set nor pays the read-for-ownership of every destination line.
#pragma once

#include <cstddef>

namespace sublet {

// Copies `size` bytes; whole 64-byte lines of dst are streamed (x86-64:
// SSE2, which every x86-64 CPU has; wider stores do not copy faster when
// memory bandwidth is the limit), the unaligned head and the tail are
// ordinary stores; ends with a store fence. Elsewhere it is memcpy.
void StreamStore(void* dst, const void* src, size_t size);

}  // namespace sublet

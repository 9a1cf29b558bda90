// What a node offers: its GPUs (emulated, or read from the NVIDIA driver
// through NVML, loaded with dlopen so that the worker never links it) and a
// few free TCP ports for the ranks' rendezvous.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"
#include "protocols/messages.h"

namespace sublet::worker {

// `count` GPUs with model "emulated" and no memory.
std::vector<protocols::GpuInfo> EmulatedGpus(uint32_t count);

// The driver's GPUs via libnvidia-ml.so.1. NotFound "no GPUs found (...)"
// when there is no driver or it reports no device; Internal when NVML fails.
absl::StatusOr<std::vector<protocols::GpuInfo>> NvmlGpus();

// Binds `count` TCP sockets to port 0 on `address` (a host name or an IPv4/
// IPv6 literal), reads the ports the kernel chose and closes them. The ports
// are free now, not reserved. InvalidArgument for an address that does not
// resolve; Unavailable when binding fails (e.g. not an address of this host).
absl::StatusOr<std::vector<uint32_t>> ProbeFreePorts(const std::string& address, int count);

}  // namespace sublet::worker

#include "worker/inventory.h"

#include <dlfcn.h>
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <memory>

#include "absl/strings/str_cat.h"

namespace sublet::worker {
namespace {

// The slice of nvml.h the worker uses; the ABI is stable across drivers.
using NvmlReturn = int;
using NvmlDevice = struct NvmlDeviceOpaque*;
struct NvmlMemory {
  unsigned long long total;
  unsigned long long free;
  unsigned long long used;
};
constexpr NvmlReturn kNvmlSuccess = 0;
constexpr unsigned int kNvmlNameLength = 96;

struct NvmlApi {
  NvmlReturn (*init)();
  NvmlReturn (*shutdown)();
  NvmlReturn (*device_count)(unsigned int*);
  NvmlReturn (*device_by_index)(unsigned int, NvmlDevice*);
  NvmlReturn (*device_name)(NvmlDevice, char*, unsigned int);
  NvmlReturn (*device_memory)(NvmlDevice, NvmlMemory*);
};

template <typename Fn>
bool LoadSymbol(void* library, const char* name, Fn*& fn) {
  fn = reinterpret_cast<Fn*>(dlsym(library, name));
  return fn != nullptr;
}

absl::Status NoGpus(const std::string& why) {
  return absl::NotFoundError(
      absl::StrCat("no GPUs found (", why, "); pass --gpus N to emulate N GPUs"));
}

absl::StatusOr<std::vector<protocols::GpuInfo>> ListDevices(const NvmlApi& api) {
  unsigned int count = 0;
  if (api.device_count(&count) != kNvmlSuccess) return absl::InternalError("nvmlDeviceGetCount failed");
  if (count == 0) return NoGpus("the NVIDIA driver reports no device");
  std::vector<protocols::GpuInfo> gpus;
  for (unsigned int i = 0; i < count; ++i) {
    NvmlDevice device = nullptr;
    if (api.device_by_index(i, &device) != kNvmlSuccess) {
      return absl::InternalError(absl::StrCat("nvmlDeviceGetHandleByIndex(", i, ") failed"));
    }
    char name[kNvmlNameLength] = {};
    NvmlMemory memory{};
    if (api.device_name(device, name, sizeof(name)) != kNvmlSuccess) strcpy(name, "unknown");
    const bool has_memory = api.device_memory(device, &memory) == kNvmlSuccess;
    gpus.push_back(protocols::GpuInfo{
        .index = i, .model = name, .memory_mib = has_memory ? memory.total >> 20 : 0});
  }
  return gpus;
}

}  // namespace

std::vector<protocols::GpuInfo> EmulatedGpus(uint32_t count) {
  std::vector<protocols::GpuInfo> gpus;
  for (uint32_t i = 0; i < count; ++i) {
    gpus.push_back(protocols::GpuInfo{.index = i, .model = "emulated", .memory_mib = 0});
  }
  return gpus;
}

absl::StatusOr<std::vector<protocols::GpuInfo>> NvmlGpus() {
  void* library = dlopen("libnvidia-ml.so.1", RTLD_NOW | RTLD_LOCAL);
  if (library == nullptr) return NoGpus("no NVIDIA driver");
  std::unique_ptr<void, int (*)(void*)> closer(library, dlclose);
  NvmlApi api{};
  if (!LoadSymbol(library, "nvmlInit_v2", api.init) ||
      !LoadSymbol(library, "nvmlShutdown", api.shutdown) ||
      !LoadSymbol(library, "nvmlDeviceGetCount_v2", api.device_count) ||
      !LoadSymbol(library, "nvmlDeviceGetHandleByIndex_v2", api.device_by_index) ||
      !LoadSymbol(library, "nvmlDeviceGetName", api.device_name) ||
      !LoadSymbol(library, "nvmlDeviceGetMemoryInfo", api.device_memory)) {
    return absl::InternalError("libnvidia-ml.so.1 lacks an NVML function the worker needs");
  }
  if (api.init() != kNvmlSuccess) return NoGpus("NVML could not initialise the NVIDIA driver");
  absl::StatusOr<std::vector<protocols::GpuInfo>> gpus = ListDevices(api);
  api.shutdown();
  return gpus;
}

absl::StatusOr<std::vector<uint32_t>> ProbeFreePorts(const std::string& address, int count) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  addrinfo* resolved = nullptr;
  if (getaddrinfo(address.c_str(), "0", &hints, &resolved) != 0 || resolved == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat("cannot resolve address ", address));
  }
  std::unique_ptr<addrinfo, void (*)(addrinfo*)> free_resolved(resolved, freeaddrinfo);
  // All sockets stay open until every port is read, so the ports differ.
  std::vector<int> sockets;
  std::vector<uint32_t> ports;
  absl::Status status;
  for (int i = 0; i < count && status.ok(); ++i) {
    const int fd = socket(resolved->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
      status = absl::UnavailableError(absl::StrCat("socket: ", strerror(errno)));
      break;
    }
    sockets.push_back(fd);
    sockaddr_storage bound{};
    socklen_t length = sizeof(bound);
    if (bind(fd, resolved->ai_addr, resolved->ai_addrlen) != 0 ||
        getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &length) != 0) {
      status = absl::UnavailableError(absl::StrCat("cannot bind on ", address, ": ", strerror(errno)));
      break;
    }
    const uint16_t port = bound.ss_family == AF_INET6
                              ? reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port
                              : reinterpret_cast<sockaddr_in*>(&bound)->sin_port;
    ports.push_back(ntohs(port));
  }
  for (int fd : sockets) close(fd);
  if (!status.ok()) return status;
  return ports;
}

}  // namespace sublet::worker

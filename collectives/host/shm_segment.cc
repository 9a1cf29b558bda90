#include "collectives/host/shm_segment.h"

#include <fcntl.h>
#include <sched.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <random>

#include "absl/strings/str_cat.h"
#include "common/status.h"

namespace sublet::collectives::host {
namespace {

constexpr size_t kCounterStride = 128;  // two cache lines: no false sharing with the prefetcher

size_t HeaderBytes(int size) { return (size * kCounterStride + 4095) / 4096 * 4096; }

inline void CpuRelax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

}  // namespace

ShmSegment::ShmSegment(int rank, int size, size_t slot_bytes, void* base, size_t mapped)
    : rank_(rank), size_(size), slot_bytes_(slot_bytes), base_(base), mapped_(mapped),
      data_(static_cast<char*>(base) + HeaderBytes(size)) {}

ShmSegment::~ShmSegment() { munmap(base_, mapped_); }

std::atomic<uint64_t>* ShmSegment::counter(int r) const {
  return reinterpret_cast<std::atomic<uint64_t>*>(static_cast<char*>(base_) + r * kCounterStride);
}

absl::StatusOr<std::unique_ptr<ShmSegment>> ShmSegment::Create(Store& store, int rank, int size,
                                                                size_t slot_bytes,
                                                                absl::Time deadline) {
  slot_bytes = (slot_bytes + 4095) / 4096 * 4096;
  const size_t bytes = HeaderBytes(size) + static_cast<size_t>(size) * 2 * slot_bytes;
  std::string name;
  int fd = -1;
  if (rank == 0) {
    std::random_device rd;
    name = absl::StrCat("/sublet-", getpid(), "-", rd(), rd());
    fd = shm_open(name.c_str(), O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, 0600);
    if (fd < 0) return absl::UnavailableError(absl::StrCat("shm_open ", name, ": ", strerror(errno)));
    if (ftruncate(fd, static_cast<off_t>(bytes)) != 0) {
      int e = errno;
      close(fd);
      shm_unlink(name.c_str());
      return absl::ResourceExhaustedError(absl::StrCat("ftruncate ", name, ": ", strerror(e)));
    }
    SUBLET_RETURN_IF_ERROR(store.Set("shm", name));
  } else {
    auto got = store.Get("shm", deadline);
    if (!got.ok()) {
      return absl::DeadlineExceededError("shared memory setup: rank 0 never published the segment");
    }
    name = *got;
    fd = shm_open(name.c_str(), O_RDWR | O_CLOEXEC, 0600);
    if (fd < 0) return absl::UnavailableError(absl::StrCat("shm_open ", name, ": ", strerror(errno)));
  }
  void* base = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  close(fd);
  if (base == MAP_FAILED) {
    if (rank == 0) shm_unlink(name.c_str());
    return absl::UnavailableError(absl::StrCat("mmap ", name, ": ", strerror(errno)));
  }
  std::unique_ptr<ShmSegment> seg(new ShmSegment(rank, size, slot_bytes, base, bytes));
  auto mapped = AllGatherViaStore(store, "shm_mapped", rank, size, "1", deadline);
  if (rank == 0) shm_unlink(name.c_str());
  if (!mapped.ok()) return mapped.status();
  return seg;
}

absl::Status ShmSegment::Sync(const internal::OpContext& ctx) {
  const uint64_t target = ++published_;
  counter(rank_)->store(target, std::memory_order_release);
  for (int j = 0; j < size_; ++j) {
    if (j == rank_) continue;
    std::atomic<uint64_t>* c = counter(j);
    for (uint32_t spins = 0; c->load(std::memory_order_acquire) < target; ++spins) {
      if (spins < 512) {
        CpuRelax();
        continue;
      }
      sched_yield();  // more ranks than cores: let the peer run
      if ((spins & 255) == 0 && absl::Now() >= ctx.deadline) {
        return absl::DeadlineExceededError(absl::StrCat(
            ctx.op, ": timed out waiting for rank ", j, " (shared memory; it is ",
            target - std::min(target, c->load()), " step(s) behind)"));
      }
    }
  }
  return absl::OkStatus();
}

}  // namespace sublet::collectives::host

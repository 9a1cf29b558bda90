#include "collectives/host/shm_segment.h"

#include <fcntl.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <climits>
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

ShmSegment::ShmSegment(int rank, int size, size_t slot_bytes, absl::Duration spin, void* base,
                       size_t mapped)
    : rank_(rank), size_(size), slot_bytes_(slot_bytes),
      spin_ns_(absl::ToInt64Nanoseconds(spin)), base_(base), mapped_(mapped),
      data_(static_cast<char*>(base) + HeaderBytes(size)) {}

ShmSegment::~ShmSegment() { munmap(base_, mapped_); }

std::atomic<uint32_t>* ShmSegment::counter(int r) const {
  return reinterpret_cast<std::atomic<uint32_t>*>(static_cast<char*>(base_) + r * kCounterStride);
}

std::atomic<uint32_t>* ShmSegment::waiters(int r) const {
  return reinterpret_cast<std::atomic<uint32_t>*>(static_cast<char*>(base_) + r * kCounterStride +
                                                  64);
}

absl::StatusOr<std::unique_ptr<ShmSegment>> ShmSegment::Create(Store& store, int rank, int size,
                                                                size_t slot_bytes,
                                                                absl::Duration spin,
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
    // posix_fallocate: a /dev/shm too small fails here, not with SIGBUS on
    // first touch in the middle of a collective.
    int e = ftruncate(fd, static_cast<off_t>(bytes)) == 0 ? 0 : errno;
    if (e == 0) e = posix_fallocate(fd, 0, static_cast<off_t>(bytes));
    if (e != 0) {
      close(fd);
      shm_unlink(name.c_str());
      return absl::ResourceExhaustedError(
          absl::StrCat("shared memory segment ", name, " (", bytes, " bytes): ", strerror(e)));
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
  // MAP_POPULATE: the page faults happen here, not in the first collectives.
  void* base = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, 0);
  close(fd);
  if (base == MAP_FAILED) {
    if (rank == 0) shm_unlink(name.c_str());
    return absl::UnavailableError(absl::StrCat("mmap ", name, ": ", strerror(errno)));
  }
  std::unique_ptr<ShmSegment> seg(new ShmSegment(rank, size, slot_bytes, spin, base, bytes));
  auto mapped = AllGatherViaStore(store, "shm_mapped", rank, size, "1", deadline);
  if (rank == 0) shm_unlink(name.c_str());
  if (!mapped.ok()) return mapped.status();
  return seg;
}

absl::Status ShmSegment::Sync(const internal::OpContext& ctx) {
  const uint32_t target = ++published_;
  counter(rank_)->store(target, std::memory_order_seq_cst);
  if (waiters(rank_)->load(std::memory_order_seq_cst) > 0) {
    syscall(SYS_futex, counter(rank_), FUTEX_WAKE, INT_MAX, nullptr, nullptr, 0);
  }
  for (int j = 0; j < size_; ++j) {
    if (j != rank_) SUBLET_RETURN_IF_ERROR(WaitFor(j, target, ctx));
  }
  return absl::OkStatus();
}

absl::Status ShmSegment::WaitFor(int peer, uint32_t target, const internal::OpContext& ctx) {
  std::atomic<uint32_t>* c = counter(peer);
  auto reached = [&](uint32_t v) { return static_cast<int32_t>(v - target) >= 0; };
  const auto spin_until = std::chrono::steady_clock::now() + std::chrono::nanoseconds(spin_ns_);
  for (uint32_t spins = 0;; ++spins) {
    if (reached(c->load(std::memory_order_acquire))) return absl::OkStatus();
    CpuRelax();
    if ((spins & 127) == 127 && std::chrono::steady_clock::now() >= spin_until) break;
  }
  while (true) {
    waiters(peer)->fetch_add(1, std::memory_order_seq_cst);
    uint32_t seen = c->load(std::memory_order_seq_cst);
    if (!reached(seen)) {
      timespec tick{0, 50'000'000};  // wake now and then to check the deadline
      syscall(SYS_futex, c, FUTEX_WAIT, seen, &tick, nullptr, 0);
      seen = c->load(std::memory_order_acquire);
    }
    waiters(peer)->fetch_sub(1, std::memory_order_seq_cst);
    if (reached(seen)) return absl::OkStatus();
    if (absl::Now() >= ctx.deadline) {
      return absl::DeadlineExceededError(absl::StrCat(
          ctx.op, ": timed out waiting for rank ", peer, " (shared memory; it is ",
          static_cast<int32_t>(target - seen), " step(s) behind)"));
    }
  }
}

}  // namespace sublet::collectives::host

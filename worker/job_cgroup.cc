#include "worker/job_cgroup.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <system_error>

#include "fmt/format.h"

namespace sublet::worker {
namespace {

namespace fs = std::filesystem;

enum class Layout { kNone, kV2, kV1 };

std::string ReadText(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

bool HasWord(const std::string& text, const std::string& word) {
  std::istringstream in(text);
  std::string w;
  while (in >> w) {
    if (w == word) return true;
  }
  return false;
}

absl::Status WriteText(const std::string& path, const std::string& text) {
  const int fd = open(path.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) return absl::InternalError(fmt::format("open {}: {}", path, strerror(errno)));
  // A cgroup write can be interrupted by a signal (the worker's SIGCHLD while
  // the kernel reclaims memory to honour a new limit): write again.
  ssize_t n;
  do {
    n = write(fd, text.data(), text.size());
  } while (n < 0 && errno == EINTR);
  const int error = errno;
  close(fd);
  if (n != static_cast<ssize_t>(text.size())) {
    return absl::InternalError(fmt::format("write '{}' to {}: {}", text, path, strerror(error)));
  }
  return absl::OkStatus();
}

absl::Status MakeDir(const std::string& path) {
  if (mkdir(path.c_str(), 0755) != 0 && errno != EEXIST) {
    return absl::InternalError(fmt::format("create {}: {}", path, strerror(errno)));
  }
  return absl::OkStatus();
}

Layout Detect(const std::string& root) {
  const std::string controllers = ReadText(root + "/cgroup.controllers");
  if (HasWord(controllers, "memory") && HasWord(controllers, "pids")) return Layout::kV2;
  std::error_code error;
  if (fs::exists(root + "/memory/cgroup.procs", error) &&
      fs::exists(root + "/pids/cgroup.procs", error)) {
    return Layout::kV1;
  }
  return Layout::kNone;
}

// v2: the sublet subtree gets the memory and pids controllers.
absl::Status PrepareV2(const std::string& root) {
  const std::string parent = root + "/sublet";
  SUBLET_RETURN_IF_ERROR(MakeDir(parent));
  for (const std::string& dir : {root, parent}) {
    const std::string enabled = ReadText(dir + "/cgroup.subtree_control");
    if (!HasWord(enabled, "memory") || !HasWord(enabled, "pids")) {
      SUBLET_RETURN_IF_ERROR(WriteText(dir + "/cgroup.subtree_control", "+memory +pids"));
    }
  }
  return absl::OkStatus();
}


// The layout under `root`, with the sublet parent(s) made ready.
absl::StatusOr<Layout> PrepareLayout(const std::string& root) {
  const Layout layout = Detect(root);
  switch (layout) {
    case Layout::kNone:
      return absl::FailedPreconditionError(fmt::format(
          "no cgroup hierarchy with the memory and pids controllers under {}", root));
    case Layout::kV2:
      SUBLET_RETURN_IF_ERROR(PrepareV2(root));
      break;
    case Layout::kV1:
      for (const char* controller : {"memory", "pids"}) {
        SUBLET_RETURN_IF_ERROR(MakeDir(fmt::format("{}/{}/sublet", root, controller)));
      }
      break;
  }
  return layout;
}

}  // namespace

absl::Status JobCgroup::Probe(const std::string& cgroup_root) {
  return PrepareLayout(cgroup_root).status();
}

absl::StatusOr<std::unique_ptr<JobCgroup>> JobCgroup::Create(const std::string& name,
                                                            const CgroupLimits& limits,
                                                            const std::string& cgroup_root) {
  if (name.empty() || name.find('/') != std::string::npos || name == "." || name == "..") {
    return absl::InvalidArgumentError(fmt::format("bad cgroup name '{}'", name));
  }
  SUBLET_ASSIGN_OR_RETURN(const Layout layout, PrepareLayout(cgroup_root));
  std::unique_ptr<JobCgroup> cgroup(new JobCgroup());
  auto limit = [](uint64_t value) { return value == 0 ? std::string("max") : std::to_string(value); };
  if (layout == Layout::kV2) {
    const std::string dir = fmt::format("{}/sublet/{}", cgroup_root, name);
    SUBLET_RETURN_IF_ERROR(MakeDir(dir));
    cgroup->dirs_.push_back(dir);
    SUBLET_RETURN_IF_ERROR(WriteText(dir + "/memory.max", limit(limits.memory_bytes)));
    SUBLET_RETURN_IF_ERROR(WriteText(dir + "/pids.max", limit(limits.pids)));
  } else {
    const std::string memory = fmt::format("{}/memory/sublet/{}", cgroup_root, name);
    const std::string pids = fmt::format("{}/pids/sublet/{}", cgroup_root, name);
    for (const std::string& dir : {memory, pids}) {
      SUBLET_RETURN_IF_ERROR(MakeDir(dir));
      cgroup->dirs_.push_back(dir);
    }
    if (limits.memory_bytes != 0) {
      SUBLET_RETURN_IF_ERROR(
          WriteText(memory + "/memory.limit_in_bytes", std::to_string(limits.memory_bytes)));
    }
    SUBLET_RETURN_IF_ERROR(WriteText(pids + "/pids.max", limit(limits.pids)));
  }
  for (const std::string& dir : cgroup->dirs_) {
    internal::UniqueFd fd(open((dir + "/cgroup.procs").c_str(), O_WRONLY | O_CLOEXEC));
    if (!fd.valid()) {
      return absl::InternalError(fmt::format("open {}/cgroup.procs: {}", dir, strerror(errno)));
    }
    cgroup->procs_fds_.push_back(fd.get());
    cgroup->procs_.push_back(std::move(fd));
  }
  return cgroup;
}

int JobCgroup::RemoveLeftovers(const std::string& prefix, const std::string& cgroup_root) {
  int removed = 0;
  for (const std::string& parent : {cgroup_root + "/sublet", cgroup_root + "/memory/sublet",
                                    cgroup_root + "/pids/sublet"}) {
    std::error_code error;
    for (const auto& entry : fs::directory_iterator(parent, error)) {
      const std::string name = entry.path().filename().string();
      if (entry.is_directory(error) && name.starts_with(prefix) &&
          rmdir(entry.path().c_str()) == 0) {
        ++removed;
      }
    }
  }
  return removed;
}

JobCgroup::~JobCgroup() {
  procs_.clear();
  for (const std::string& dir : dirs_) rmdir(dir.c_str());
}

absl::Status JobCgroup::Add(int pid) const {
  for (const std::string& dir : dirs_) {
    SUBLET_RETURN_IF_ERROR(WriteText(dir + "/cgroup.procs", std::to_string(pid)));
  }
  return absl::OkStatus();
}

}  // namespace sublet::worker

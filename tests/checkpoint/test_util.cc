#include "tests/checkpoint/test_util.h"

#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <thread>

#include <gtest/gtest.h>

namespace sublet::checkpoint::testing {
namespace fs = std::filesystem;

std::vector<TensorSpec> SyntheticSpecs() {
  std::vector<TensorSpec> specs = {
      {"embed", DType::kF32, {300, 64}, 0},
      {"attn.w", DType::kF32, {16, 24}, 1},
      {"mlp.w", DType::kBF16, {8, 6, 10}, 1},
      {"norm", DType::kF32, {16}, -1},
      {"bias", DType::kF64, {5}, 0},
      {"tiny", DType::kI32, {3}, 0},
      {"step_count", DType::kI64, {}, -1},
  };
  // Adam moments shard like their parameters.
  for (const char* p : {"embed", "attn.w", "mlp.w"}) {
    for (const char* moment : {"/adam_m", "/adam_v"}) {
      TensorSpec s = *std::find_if(specs.begin(), specs.end(), [&](const TensorSpec& t) { return t.name == p; });
      s.name += moment;
      s.dtype = DType::kF32;
      specs.push_back(s);
    }
  }
  return specs;
}

std::vector<std::byte> GlobalBytes(const TensorSpec& spec, int64_t step) {
  std::vector<std::byte> bytes(NumElements(spec.shape) * DTypeSize(spec.dtype));
  uint64_t x = std::hash<std::string>{}(spec.name) ^ (static_cast<uint64_t>(step) * 0x9e3779b97f4a7c15ull);
  for (std::byte& b : bytes) {
    x = x * 6364136223846793005ull + 1442695040888963407ull;
    b = static_cast<std::byte>(x >> 56);
  }
  return bytes;
}

std::vector<std::byte> Slice(const TensorSpec& spec, const std::vector<std::byte>& global, int tp,
                             int shard) {
  if (spec.split_dim < 0) return global;
  const size_t k = static_cast<size_t>(spec.split_dim);
  const int64_t size = spec.shape[k];
  const int64_t begin = size * shard / tp, end = size * (shard + 1) / tp;
  uint64_t outer = 1, inner = DTypeSize(spec.dtype);
  for (size_t d = 0; d < k; ++d) outer *= spec.shape[d];
  for (size_t d = k + 1; d < spec.shape.size(); ++d) inner *= spec.shape[d];
  std::vector<std::byte> out;
  for (uint64_t o = 0; o < outer; ++o) {
    for (int64_t row = begin; row < end; ++row) {
      const std::byte* src = global.data() + (o * size + row) * inner;
      out.insert(out.end(), src, src + inner);
    }
  }
  return out;
}

RankState MakeRankState(const std::vector<TensorSpec>& specs, int tp, int tp_rank, int64_t step,
                        bool fill) {
  RankState state;
  for (const TensorSpec& spec : specs) {
    std::vector<std::byte> local = Slice(spec, GlobalBytes(spec, step), tp, tp_rank);
    if (!fill) std::fill(local.begin(), local.end(), std::byte{0});
    state.buffers.push_back(std::move(local));
  }
  for (size_t i = 0; i < specs.size(); ++i) {
    state.shards.push_back({specs[i], state.buffers[i].data(), state.buffers[i].size()});
  }
  return state;
}

bool HoldsStep(const RankState& state, int tp, int tp_rank, int64_t step) {
  for (size_t i = 0; i < state.shards.size(); ++i) {
    const TensorSpec& spec = state.shards[i].spec;
    if (state.buffers[i] != Slice(spec, GlobalBytes(spec, step), tp, tp_rank)) return false;
  }
  return true;
}

Topology Topo(int dp, int tp, int world_rank) { return {dp, tp, world_rank / tp, world_rank % tp}; }

std::vector<absl::Status> RunRanks(int n, const std::function<absl::Status(int)>& fn) {
  std::vector<absl::Status> statuses(n);
  std::vector<std::thread> threads;
  for (int r = 0; r < n; ++r) threads.emplace_back([&, r] { statuses[r] = fn(r); });
  for (std::thread& t : threads) t.join();
  return statuses;
}

ScratchDir::ScratchDir() {
  std::string pattern = (fs::temp_directory_path() / "sublet-ckpt-XXXXXX").string();
  if (mkdtemp(pattern.data()) == nullptr) ADD_FAILURE() << "mkdtemp failed";
  path_ = pattern;
}

ScratchDir::~ScratchDir() {
  std::error_code ignored;
  fs::remove_all(path_, ignored);
}

void FaultyFileSystem::Op() {
  const int64_t n = ++ops;
  if (crash_at_op > 0 && n == crash_at_op) raise(SIGKILL);
}

class FaultyFile final : public WritableFile {
 public:
  FaultyFile(FaultyFileSystem& fs, std::string path, std::unique_ptr<WritableFile> real)
      : fs_(fs), path_(std::move(path)), real_(std::move(real)) {}

  absl::Status Append(const void* data, size_t size) override {
    if (path_.find("/shard-") != std::string::npos) {
      std::lock_guard<std::mutex> lock(fs_.mu_);
      fs_.shard_appends_.push_back({static_cast<const std::byte*>(data), size});
    }
    if (fs_.CrashesNow()) {
      real_->Append(data, size / 2).IgnoreError();
      fs_.Op();
    }
    fs_.Op();
    const bool limited = fs_.fail_path_substring.empty() ||
                         path_.find(fs_.fail_path_substring) != std::string::npos;
    if (limited) {
      const int64_t left = fs_.space_left.fetch_sub(static_cast<int64_t>(size));
      if (left < static_cast<int64_t>(size)) {
        if (left > 0) real_->Append(data, static_cast<size_t>(left)).IgnoreError();
        fs_.space_left = 0;
        return absl::ResourceExhaustedError("writing " + path_ + ": No space left on device");
      }
    }
    return real_->Append(data, size);
  }
  absl::Status Sync() override {
    fs_.Op();
    return real_->Sync();
  }
  absl::Status Close() override {
    fs_.Op();
    return real_->Close();
  }

 private:
  FaultyFileSystem& fs_;
  std::string path_;
  std::unique_ptr<WritableFile> real_;
};

absl::StatusOr<std::unique_ptr<WritableFile>> FaultyFileSystem::NewWritableFile(const std::string& path) {
  Op();
  SUBLET_ASSIGN_OR_RETURN(std::unique_ptr<WritableFile> real, real_.NewWritableFile(path));
  return std::make_unique<FaultyFile>(*this, path, std::move(real));
}

absl::Status FaultyFileSystem::CreateDir(const std::string& path) {
  Op();
  return real_.CreateDir(path);
}
absl::Status FaultyFileSystem::Rename(const std::string& from, const std::string& to) {
  Op();
  return real_.Rename(from, to);
}
absl::Status FaultyFileSystem::SyncDir(const std::string& path) {
  Op();
  return real_.SyncDir(path);
}
absl::Status FaultyFileSystem::RemoveAll(const std::string& path) {
  Op();
  return real_.RemoveAll(path);
}

void FlipByte(const std::string& path, uint64_t offset) {
  std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
  f.seekg(static_cast<std::streamoff>(offset));
  char c;
  f.read(&c, 1);
  c = static_cast<char>(c ^ 0x10);
  f.seekp(static_cast<std::streamoff>(offset));
  f.write(&c, 1);
}

void Truncate(const std::string& path, uint64_t size) { fs::resize_file(path, size); }

}  // namespace sublet::checkpoint::testing

namespace sublet::checkpoint::testing {

SaveOptions SmallSaveOptions(const std::string& dir, Topology topology) {
  SaveOptions o;
  o.dir = dir;
  o.topology = topology;
  o.keep = 0;
  o.block_size = 4096;
  o.min_split_bytes = 1024;
  return o;
}

absl::Status SaveWorld(FileSystem& fs, const std::string& dir, int dp, int tp, int64_t step,
                       int keep, const std::string& lineage) {
  InProcessGroups groups(dp * tp);
  const std::vector<TensorSpec> specs = SyntheticSpecs();
  std::vector<absl::Status> statuses = RunRanks(dp * tp, [&](int r) {
    Topology t = Topo(dp, tp, r);
    RankState state = MakeRankState(specs, tp, t.tp_rank, step);
    SaveOptions o = SmallSaveOptions(dir, t);
    o.keep = keep;
    o.run.lineage = lineage;
    Cursor cursor{step, static_cast<uint64_t>(step) * 32, "rng@" + std::to_string(step)};
    return SaveCheckpoint(fs, groups.Member(r), o, cursor, state.shards).status();
  });
  for (const absl::Status& s : statuses) EXPECT_EQ(s.code(), statuses[0].code()) << s;
  return statuses[0];
}

WorldLoad LoadWorld(FileSystem& fs, const std::string& dir, int dp, int tp, uint64_t max_read_bytes) {
  InProcessGroups groups(dp * tp);
  const std::vector<TensorSpec> specs = SyntheticSpecs();
  std::vector<LoadResult> results(dp * tp);
  std::vector<int> holds(dp * tp, 0);
  std::vector<absl::Status> statuses = RunRanks(dp * tp, [&](int r) {
    Topology t = Topo(dp, tp, r);
    RankState state = MakeRankState(specs, tp, t.tp_rank, 0, /*fill=*/false);
    LoadOptions o{dir, t, std::nullopt, max_read_bytes};
    absl::StatusOr<LoadResult> loaded = LoadCheckpoint(fs, groups.Member(r), o, state.shards);
    if (!loaded.ok()) return loaded.status();
    results[r] = *loaded;
    holds[r] = HoldsStep(state, tp, t.tp_rank, loaded->step);
    return absl::OkStatus();
  });
  WorldLoad out;
  out.status = statuses[0];
  out.result = results[0];
  out.all_hold_step = std::all_of(holds.begin(), holds.end(), [](int h) { return h == 1; });
  for (int r = 0; r < dp * tp; ++r) {
    EXPECT_EQ(statuses[r].code(), statuses[0].code()) << statuses[r];
    EXPECT_EQ(results[r].step, results[0].step);
  }
  return out;
}

}  // namespace sublet::checkpoint::testing

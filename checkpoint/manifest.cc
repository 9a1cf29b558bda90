#include "checkpoint/manifest.h"

#include <xxhash.h>

#include <algorithm>
#include <map>
#include <set>

#include "checkpoint/internal/bytes.h"
#include "fmt/format.h"

namespace sublet::checkpoint {
namespace {

using internal::ByteReader;
using internal::ByteWriter;

constexpr std::string_view kManifestMagic = "SUBLETMF";
constexpr std::string_view kCommitMagic = "SUBLETCM";
// Manifest format 2 adds the run (lineage, config) after the cursor; format
// 1 manifests still load, with an empty run. COMMIT is unchanged (format 1).
constexpr uint32_t kManifestVersion = 2;
constexpr uint32_t kCommitVersion = 1;

absl::Status Corrupt(std::string_view what) {
  return absl::DataLossError(fmt::format("MANIFEST: {}", what));
}

bool ReadMagic(ByteReader& r, std::string_view magic) {
  for (char c : magic) {
    uint8_t b;
    if (!r.U8(&b) || static_cast<char>(b) != c) return false;
  }
  return true;
}

absl::StatusOr<TensorSpec> ReadTensor(ByteReader& r) {
  TensorSpec t;
  uint8_t dtype;
  uint32_t ndims;
  if (!r.Bytes(&t.name, kMaxNameBytes) || !r.U8(&dtype) || !r.U32(&ndims) || ndims > kMaxDims) {
    return Corrupt("bad tensor record");
  }
  t.dtype = static_cast<DType>(dtype);
  t.shape.resize(ndims);
  for (int64_t& d : t.shape) {
    if (!r.I64(&d)) return Corrupt("short tensor shape");
  }
  int64_t split;
  if (!r.I64(&split) || split < -1 || split >= static_cast<int64_t>(ndims)) {
    return Corrupt(fmt::format("tensor '{}': bad split dimension", t.name));
  }
  t.split_dim = static_cast<int>(split);
  absl::Status valid = ValidateSpec(t);
  if (!valid.ok()) return Corrupt(std::string(valid.message()));
  return t;
}

absl::StatusOr<Piece> ReadPiece(ByteReader& r, uint64_t block_size) {
  Piece p;
  if (!r.U32(&p.tensor) || !r.U32(&p.tp_shard) || !r.U64(&p.shard_offset) || !r.U32(&p.file) ||
      !r.U64(&p.file_offset) || !r.U64(&p.length) || p.length == 0) {
    return Corrupt("bad piece record");
  }
  const uint64_t blocks = (p.length + block_size - 1) / block_size;
  if (blocks > r.remaining() / 8) return Corrupt("piece checksums run past the end");
  p.checksums.resize(blocks);
  for (uint64_t& c : p.checksums) r.U64(&c);
  return p;
}

// Each (tensor, shard) must be tiled exactly by its pieces, and pieces must
// lie inside their files without overlapping.
absl::Status CheckPieces(const Manifest& m) {
  std::map<std::pair<uint32_t, uint32_t>, std::vector<const Piece*>> by_shard;
  std::vector<std::vector<const Piece*>> by_file(m.files.size());
  for (const Piece& p : m.pieces) {
    if (p.tensor >= m.tensors.size()) return Corrupt("piece names a tensor that does not exist");
    const TensorSpec& t = m.tensors[p.tensor];
    if (p.tp_shard >= static_cast<uint32_t>(NumShards(t, m.tp))) {
      return Corrupt(fmt::format("tensor '{}': piece names shard {}", t.name, p.tp_shard));
    }
    if (p.file >= m.files.size()) return Corrupt("piece names a file that does not exist");
    if (p.file_offset > m.files[p.file].size || p.length > m.files[p.file].size - p.file_offset) {
      return Corrupt(fmt::format("{}: piece at offset {} runs past the file's end",
                                 m.files[p.file].name, p.file_offset));
    }
    by_shard[{p.tensor, p.tp_shard}].push_back(&p);
    by_file[p.file].push_back(&p);
  }
  for (uint32_t i = 0; i < m.tensors.size(); ++i) {
    for (int s = 0; s < NumShards(m.tensors[i], m.tp); ++s) {
      std::vector<const Piece*>& pieces = by_shard[{i, static_cast<uint32_t>(s)}];
      std::sort(pieces.begin(), pieces.end(),
                [](const Piece* a, const Piece* b) { return a->shard_offset < b->shard_offset; });
      uint64_t covered = 0;
      bool tiled = true;
      for (const Piece* p : pieces) {
        tiled = tiled && p->shard_offset == covered;
        covered += p->length;
      }
      if (!tiled || covered != LocalBytes(m.tensors[i], m.tp, s)) {
        return Corrupt(fmt::format("tensor '{}' shard {}: pieces do not cover it exactly",
                                   m.tensors[i].name, s));
      }
    }
  }
  for (size_t f = 0; f < by_file.size(); ++f) {
    std::vector<const Piece*>& pieces = by_file[f];
    std::sort(pieces.begin(), pieces.end(),
              [](const Piece* a, const Piece* b) { return a->file_offset < b->file_offset; });
    for (size_t i = 1; i < pieces.size(); ++i) {
      if (pieces[i - 1]->file_offset + pieces[i - 1]->length > pieces[i]->file_offset) {
        return Corrupt(fmt::format("{}: pieces overlap", m.files[f].name));
      }
    }
  }
  return absl::OkStatus();
}

absl::Status ReadBody(ByteReader& r, uint32_t version, Manifest& m) {
  uint32_t dp, tp;
  if (!r.U32(&dp) || !r.U32(&tp) || !r.U64(&m.block_size)) return Corrupt("short header");
  if (dp < 1 || tp < 1 || dp > kMaxParallel || tp > kMaxParallel) return Corrupt("bad topology");
  if (m.block_size < 4096 || m.block_size > (1ull << 30)) return Corrupt("bad block size");
  m.dp = static_cast<int>(dp);
  m.tp = static_cast<int>(tp);
  if (!r.I64(&m.cursor.step) || m.cursor.step < 0 || !r.U64(&m.cursor.data_position) ||
      !r.Bytes(&m.cursor.rng_state, kMaxRngStateBytes)) {
    return Corrupt("bad cursor");
  }
  if (version >= 2 && (!r.Bytes(&m.run.lineage, kMaxRunInfoBytes) ||
                       !r.Bytes(&m.run.config, kMaxRunInfoBytes))) {
    return Corrupt("bad run");
  }
  uint64_t n;
  if (!r.U64(&n) || n > kMaxTensors || n > r.remaining() / 24) return Corrupt("bad tensor count");
  std::set<std::string> names;
  for (uint64_t i = 0; i < n; ++i) {
    SUBLET_ASSIGN_OR_RETURN(TensorSpec t, ReadTensor(r));
    if (!names.insert(t.name).second) return Corrupt(fmt::format("tensor '{}' twice", t.name));
    m.tensors.push_back(std::move(t));
  }
  if (!r.U64(&n) || n > static_cast<uint64_t>(m.dp) * m.tp || n > r.remaining() / 16) {
    return Corrupt("bad file count");
  }
  for (uint64_t i = 0; i < n; ++i) {
    ShardFileInfo f;
    if (!r.Bytes(&f.name, 64) || !r.U64(&f.size) || f.name != ShardFileName(static_cast<int>(i))) {
      return Corrupt(fmt::format("bad shard file record {}", i));
    }
    m.files.push_back(std::move(f));
  }
  if (!r.U64(&n) || n > r.remaining() / 44) return Corrupt("bad piece count");
  for (uint64_t i = 0; i < n; ++i) {
    SUBLET_ASSIGN_OR_RETURN(Piece p, ReadPiece(r, m.block_size));
    m.pieces.push_back(std::move(p));
  }
  if (r.remaining() != 0) return Corrupt("trailing bytes");
  return CheckPieces(m);
}

}  // namespace

size_t DTypeSize(DType dtype) {
  switch (dtype) {
    case DType::kU8: return 1;
    case DType::kF16:
    case DType::kBF16: return 2;
    case DType::kF32:
    case DType::kI32: return 4;
    case DType::kF64:
    case DType::kI64: return 8;
  }
  return 0;
}

std::string DTypeName(DType dtype) {
  switch (dtype) {
    case DType::kU8: return "u8";
    case DType::kF16: return "f16";
    case DType::kBF16: return "bf16";
    case DType::kF32: return "f32";
    case DType::kI32: return "i32";
    case DType::kF64: return "f64";
    case DType::kI64: return "i64";
  }
  return "invalid";
}

uint64_t Manifest::TotalBytes() const {
  uint64_t total = 0;
  for (const Piece& p : pieces) total += p.length;
  return total;
}

std::string EncodeManifest(const Manifest& m) {
  ByteWriter w;
  w.str().append(kManifestMagic);
  w.U32(kManifestVersion);
  w.U32(static_cast<uint32_t>(m.dp));
  w.U32(static_cast<uint32_t>(m.tp));
  w.U64(m.block_size);
  w.I64(m.cursor.step);
  w.U64(m.cursor.data_position);
  w.Bytes(m.cursor.rng_state);
  w.Bytes(m.run.lineage);
  w.Bytes(m.run.config);
  w.U64(m.tensors.size());
  for (const TensorSpec& t : m.tensors) {
    w.Bytes(t.name);
    w.U8(static_cast<uint8_t>(t.dtype));
    w.U32(static_cast<uint32_t>(t.shape.size()));
    for (int64_t d : t.shape) w.I64(d);
    w.I64(t.split_dim);
  }
  w.U64(m.files.size());
  for (const ShardFileInfo& f : m.files) {
    w.Bytes(f.name);
    w.U64(f.size);
  }
  w.U64(m.pieces.size());
  for (const Piece& p : m.pieces) {
    w.U32(p.tensor);
    w.U32(p.tp_shard);
    w.U64(p.shard_offset);
    w.U32(p.file);
    w.U64(p.file_offset);
    w.U64(p.length);
    for (uint64_t c : p.checksums) w.U64(c);
  }
  return std::move(w.str());
}

absl::StatusOr<Manifest> ParseManifest(std::string_view bytes) {
  if (bytes.size() > kMaxManifestBytes) return Corrupt("too large");
  ByteReader r(bytes);
  uint32_t version;
  if (!ReadMagic(r, kManifestMagic) || !r.U32(&version)) return Corrupt("not a manifest");
  if (version < 1 || version > kManifestVersion) {
    return Corrupt(fmt::format("unknown version {}", version));
  }
  Manifest m;
  SUBLET_RETURN_IF_ERROR(ReadBody(r, version, m));
  return m;
}

std::string EncodeCommit(const CommitRecord& c) {
  ByteWriter w;
  w.str().append(kCommitMagic);
  w.U32(kCommitVersion);
  w.I64(c.step);
  w.U64(c.manifest_size);
  w.U64(c.manifest_checksum);
  w.U64(Checksum(w.str().data(), w.str().size()));
  return std::move(w.str());
}

absl::StatusOr<CommitRecord> ParseCommit(std::string_view bytes) {
  constexpr size_t kSize = 8 + 4 + 8 + 8 + 8 + 8;
  if (bytes.size() != kSize) return absl::DataLossError("COMMIT: wrong size");
  ByteReader r(bytes);
  uint32_t version;
  CommitRecord c;
  uint64_t self;
  if (!ReadMagic(r, kCommitMagic) || !r.U32(&version) || version != kCommitVersion || !r.I64(&c.step) ||
      !r.U64(&c.manifest_size) || !r.U64(&c.manifest_checksum) || !r.U64(&self) ||
      self != Checksum(bytes.data(), kSize - 8)) {
    return absl::DataLossError("COMMIT: corrupt");
  }
  return c;
}

uint64_t Checksum(const void* data, size_t size) { return XXH3_64bits(data, size); }

std::string StepDirName(int64_t step) { return fmt::format("step-{:08d}", step); }

bool ParseStepDirName(std::string_view name, int64_t* step) {
  constexpr std::string_view kPrefix = "step-";
  if (name.substr(0, kPrefix.size()) != kPrefix) return false;
  std::string_view digits = name.substr(kPrefix.size());
  if (digits.size() < 8 || digits.size() > 18) return false;
  int64_t v = 0;
  for (char c : digits) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + (c - '0');
  }
  if (StepDirName(v) != name) return false;
  *step = v;
  return true;
}

std::string ShardFileName(int world_rank) { return fmt::format("shard-{:05d}.bin", world_rank); }

uint64_t NumElements(const std::vector<int64_t>& shape) {
  uint64_t n = 1;
  for (int64_t d : shape) n *= static_cast<uint64_t>(d);
  return n;
}

int NumShards(const TensorSpec& spec, int tp) { return spec.split_dim < 0 ? 1 : tp; }

std::pair<int64_t, int64_t> ShardRange(const TensorSpec& spec, int tp, int shard) {
  if (spec.split_dim < 0) return {0, spec.shape.empty() ? 1 : spec.shape[0]};
  using U = unsigned __int128;
  const U size = static_cast<U>(spec.shape[spec.split_dim]);
  return {static_cast<int64_t>(size * shard / tp), static_cast<int64_t>(size * (shard + 1) / tp)};
}

std::vector<int64_t> LocalShape(const TensorSpec& spec, int tp, int shard) {
  std::vector<int64_t> shape = spec.shape;
  if (spec.split_dim >= 0) {
    auto [begin, end] = ShardRange(spec, tp, shard);
    shape[spec.split_dim] = end - begin;
  }
  return shape;
}

uint64_t LocalBytes(const TensorSpec& spec, int tp, int shard) {
  return NumElements(LocalShape(spec, tp, shard)) * DTypeSize(spec.dtype);
}

absl::Status ValidateSpec(const TensorSpec& spec) {
  if (spec.name.empty() || spec.name.size() > kMaxNameBytes) {
    return absl::InvalidArgumentError("tensor name empty or too long");
  }
  if (DTypeSize(spec.dtype) == 0) {
    return absl::InvalidArgumentError(fmt::format("tensor '{}': bad dtype", spec.name));
  }
  if (spec.shape.size() > kMaxDims || spec.split_dim < -1 ||
      spec.split_dim >= static_cast<int>(spec.shape.size())) {
    return absl::InvalidArgumentError(fmt::format("tensor '{}': bad rank or split", spec.name));
  }
  uint64_t bytes = DTypeSize(spec.dtype);
  for (int64_t d : spec.shape) {
    if (d < 0 || (d > 0 && bytes > kMaxTensorBytes / static_cast<uint64_t>(d))) {
      return absl::InvalidArgumentError(fmt::format("tensor '{}': bad shape", spec.name));
    }
    bytes *= static_cast<uint64_t>(d);
  }
  return absl::OkStatus();
}

}  // namespace sublet::checkpoint

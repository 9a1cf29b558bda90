// Writes the seed corpora: one valid frame per message body (codec), and a
// valid MANIFEST and COMMIT (manifest), so the fuzzers start from every shape
// the formats have. Run from the repository root:
//   build/tests/make_fuzz_seeds tests/fuzz/corpus
#include <cstdio>
#include <fstream>
#include <string>

#include "checkpoint/manifest.h"
#include "protocols/codec.h"
#include "tests/protocols/sample_messages.h"

namespace {

// dp=1, tp=2: one replicated tensor and one split along dim 0.
sublet::checkpoint::Manifest SampleManifest() {
  using namespace sublet::checkpoint;
  Manifest m;
  m.tp = 2;
  m.block_size = 4096;
  m.cursor = {120, 7680, std::string("rng\0state", 9)};
  m.tensors = {{"wte", DType::kF32, {4}, -1}, {"mlp.fc", DType::kBF16, {4, 2}, 0}};
  m.files = {{"shard-00000.bin", 24}, {"shard-00001.bin", 8}};
  m.pieces = {{0, 0, 0, 0, 0, 16, {1}}, {1, 0, 0, 0, 16, 8, {3}}, {1, 1, 0, 1, 0, 8, {4}}};
  return m;
}

void Write(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary) << bytes;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: make_fuzz_seeds CORPUS_DIR\n");
    return 2;
  }
  const std::string dir = argv[1];
  int n = 0;
  for (const auto& body : sublet::protocols::samples::AllBodies()) {
    Write(dir + "/codec/seed-" + std::to_string(n++) + ".bin",
          sublet::protocols::Encode(sublet::protocols::samples::WithBody(body)));
  }
  const std::string manifest = sublet::checkpoint::EncodeManifest(SampleManifest());
  auto parsed = sublet::checkpoint::ParseManifest(manifest);
  if (!parsed.ok()) {
    std::fprintf(stderr, "sample manifest does not parse: %s\n", parsed.status().ToString().c_str());
    return 1;
  }
  Write(dir + "/manifest/manifest.bin", manifest);
  Write(dir + "/manifest/commit.bin",
        sublet::checkpoint::EncodeCommit({120, manifest.size(),
                                          sublet::checkpoint::Checksum(manifest.data(),
                                                                       manifest.size())}));
  return 0;
}

// Without libFuzzer (the gcc build), each fuzz target is linked with this
// main and replays its seed corpus as a regression test: every file in the
// corpus directory is fed to the target once, and what the target made of it
// (tests/fuzz/outcome.h) must be what the expectations file says:
//   replay CORPUS_DIR EXPECTATIONS
// with one "FILE accepted" or "FILE refused" line per corpus file ('#'
// starts a comment). A file the expectations do not name, or one named that
// is not there, fails the replay too: every seed says what it tests.
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "tests/fuzz/outcome.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: %s CORPUS_DIR EXPECTATIONS\n", argv[0]);
    return 2;
  }
  std::map<std::string, std::string> expected;
  std::ifstream list(argv[2]);
  if (!list) {
    std::fprintf(stderr, "cannot read %s\n", argv[2]);
    return 2;
  }
  std::string line;
  while (std::getline(list, line)) {
    line = line.substr(0, line.find('#'));
    std::istringstream words(line);
    std::string name, outcome;
    if (!(words >> name)) continue;
    if (!(words >> outcome) || (outcome != "accepted" && outcome != "refused")) {
      std::fprintf(stderr, "%s: '%s' needs accepted or refused\n", argv[2], name.c_str());
      return 2;
    }
    expected[name] = outcome;
  }
  size_t inputs = 0;
  int failures = 0;
  for (const auto& entry : std::filesystem::directory_iterator(argv[1])) {
    const std::string name = entry.path().filename().string();
    std::ifstream in(entry.path(), std::ios::binary);
    std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)),
                               std::istreambuf_iterator<char>());
    sublet::fuzz::last_outcome = sublet::fuzz::Outcome::kNone;
    LLVMFuzzerTestOneInput(bytes.data(), bytes.size());
    ++inputs;
    const char* got = sublet::fuzz::last_outcome == sublet::fuzz::Outcome::kAccepted ? "accepted"
                      : sublet::fuzz::last_outcome == sublet::fuzz::Outcome::kRefused
                          ? "refused"
                          : "nothing";
    auto it = expected.find(name);
    if (it == expected.end()) {
      std::fprintf(stderr, "%s: %s, and %s does not say what it should be\n", name.c_str(), got,
                   argv[2]);
      ++failures;
      continue;
    }
    if (it->second != got) {
      std::fprintf(stderr, "%s: %s, expected %s\n", name.c_str(), got, it->second.c_str());
      ++failures;
    }
    expected.erase(it);
  }
  for (const auto& [name, outcome] : expected) {
    std::fprintf(stderr, "%s: named in %s but not in the corpus\n", name.c_str(), argv[2]);
    ++failures;
  }
  std::printf("replayed %zu inputs, %d not as expected\n", inputs, failures);
  return inputs > 0 && failures == 0 ? 0 : 1;
}

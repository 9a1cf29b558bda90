// Writes the codec seed corpus: one valid frame per message body, so the
// fuzzer starts from every shape the protocol has. Run from the repository
// root: build/tests/make_fuzz_seeds tests/fuzz/corpus/codec
#include <cstdio>
#include <fstream>
#include <string>

#include "protocols/codec.h"
#include "tests/protocols/sample_messages.h"

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: make_fuzz_seeds DIR\n");
    return 2;
  }
  int n = 0;
  for (const auto& body : sublet::protocols::samples::AllBodies()) {
    std::ofstream(std::string(argv[1]) + "/seed-" + std::to_string(n++) + ".bin",
                  std::ios::binary)
        << sublet::protocols::Encode(sublet::protocols::samples::WithBody(body));
  }
  return 0;
}

// What a fuzz target made of its last input: set by each target, read by the
// replay main (replay_main.cc), which checks it against the corpus's
// expectations, so a regression input asserts what became of it. Unused in
// libFuzzer builds.
#pragma once

namespace sublet::fuzz {

enum class Outcome { kNone, kRefused, kAccepted };
inline Outcome last_outcome = Outcome::kNone;

}  // namespace sublet::fuzz

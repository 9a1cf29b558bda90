// Bench output: each row is one measurement of ours next to the peers
// measured in the same run; printed as a table or as one JSON document.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace sublet::bench {

struct Report {
  std::string area;
  std::string command;       // the exact command line that produced it
  nlohmann::json machine;    // facts measured in the same run
  std::vector<nlohmann::json> rows;

  void Print(bool json) const;
};

// The median every bench reports (the upper middle of an even count);
// throws std::runtime_error when there are no samples.
double Median(std::vector<double> v);

}  // namespace sublet::bench

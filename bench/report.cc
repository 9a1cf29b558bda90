#include "bench/report.h"

#include <algorithm>
#include <iostream>
#include <set>
#include <stdexcept>

#include "fmt/format.h"

namespace sublet::bench {
namespace {

std::string Cell(const nlohmann::json& v) {
  if (v.is_number_float()) return fmt::format("{:.4g}", v.get<double>());
  if (v.is_string()) return v.get<std::string>();
  return v.dump();
}

}  // namespace

double Median(std::vector<double> v) {
  if (v.empty()) throw std::runtime_error("no samples");
  std::nth_element(v.begin(), v.begin() + v.size() / 2, v.end());
  return v[v.size() / 2];
}

void Report::Print(bool json) const {
  if (json) {
    nlohmann::json doc = {{"area", area}, {"command", command}, {"machine", machine},
                          {"rows", rows}};
    std::cout << doc.dump(2) << "\n";
    return;
  }
  std::cout << "sublet-bench " << area << "   (" << command << ")\n";
  for (const auto& [k, v] : machine.items()) std::cout << "  machine." << k << " = " << Cell(v) << "\n";
  std::vector<std::string> columns;
  std::set<std::string> seen;
  for (const nlohmann::json& row : rows) {
    for (const auto& [k, v] : row.items()) {
      if (seen.insert(k).second) columns.push_back(k);
    }
  }
  std::vector<size_t> width;
  for (const std::string& c : columns) {
    size_t w = c.size();
    for (const nlohmann::json& row : rows) {
      if (row.contains(c)) w = std::max(w, Cell(row[c]).size());
    }
    width.push_back(w);
  }
  for (size_t i = 0; i < columns.size(); ++i) std::cout << fmt::format("{:<{}}  ", columns[i], width[i]);
  std::cout << "\n";
  for (const nlohmann::json& row : rows) {
    for (size_t i = 0; i < columns.size(); ++i) {
      std::cout << fmt::format("{:<{}}  ", row.contains(columns[i]) ? Cell(row[columns[i]]) : "-",
                               width[i]);
    }
    std::cout << "\n";
  }
}

}  // namespace sublet::bench

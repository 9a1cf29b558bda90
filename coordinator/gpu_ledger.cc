#include "coordinator/gpu_ledger.h"

namespace sublet::coordinator {

bool GpuLedger::Update(const Job& job) {
  const bool was_live = IsLive(job.id);
  Forget(job.id);
  for (const RankRecord& r : job.ranks) {
    if (r.exited) continue;
    std::vector<uint32_t>& gpus = by_node_[r.node][job.id];
    gpus.insert(gpus.end(), r.gpus.begin(), r.gpus.end());
    nodes_of_[job.id].insert(r.node);
  }
  const bool live = nodes_of_.count(job.id) > 0;
  if (live) live_.insert(job.id);
  return was_live && !live;
}

void GpuLedger::Forget(uint64_t job_id) {
  live_.erase(job_id);
  auto it = nodes_of_.find(job_id);
  if (it == nodes_of_.end()) return;
  for (const std::string& node : it->second) {
    auto n = by_node_.find(node);
    n->second.erase(job_id);
    if (n->second.empty()) by_node_.erase(n);
  }
  nodes_of_.erase(it);
}

void GpuLedger::Clear() {
  live_.clear();
  by_node_.clear();
  nodes_of_.clear();
}

std::vector<uint64_t> GpuLedger::JobsOn(const std::string& node) const {
  std::vector<uint64_t> out;
  auto it = by_node_.find(node);
  if (it == by_node_.end()) return out;
  for (const auto& [id, gpus] : it->second) out.push_back(id);
  return out;
}

std::vector<bool> GpuLedger::Held(const std::string& node, uint32_t gpus) const {
  std::vector<bool> held(gpus, false);
  auto it = by_node_.find(node);
  if (it == by_node_.end()) return held;
  for (const auto& [id, taken] : it->second) {
    for (uint32_t g : taken) {
      if (held.size() <= g) held.resize(g + 1, false);
      held[g] = true;
    }
  }
  return held;
}

std::vector<uint32_t> GpuLedger::Free(const std::string& node, uint32_t gpus) const {
  const std::vector<bool> held = Held(node, gpus);
  std::vector<uint32_t> free;
  for (uint32_t g = 0; g < gpus; ++g) {
    if (!held[g]) free.push_back(g);
  }
  return free;
}

}  // namespace sublet::coordinator

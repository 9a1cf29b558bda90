#include "coordinator/dependencies.h"

#include "fmt/format.h"

namespace sublet::coordinator {
namespace {

std::string Named(const DependencyTarget& t) {
  if (!t.array) return fmt::format("job {}", t.id);
  return fmt::format("array job {} ({} of {} tasks ended)", t.id, t.ended, t.tasks);
}

}  // namespace

DependencyVerdict JudgeDependency(const protocols::Dependency& dep, const DependencyTarget& t) {
  using protocols::DependencyWhen;
  const bool all_ended = t.ended >= t.tasks;
  const uint32_t unsuccessful = t.ended - t.succeeded;
  switch (dep.when) {
    case DependencyWhen::kSucceeded:
      if (t.succeeded >= t.tasks) return {DependencyState::kHolds, ""};
      if (unsuccessful > 0) {
        return {DependencyState::kNever,
                t.array ? fmt::format("array job {}: {} did not succeed", t.id,
                                      unsuccessful == 1 ? std::string("a task")
                                                        : fmt::format("{} tasks", unsuccessful))
                        : fmt::format("job {} {}", t.id, t.state)};
      }
      return {DependencyState::kWaiting, Named(t) + " to succeed"};
    case DependencyWhen::kFailed:
      if (all_ended && unsuccessful > 0) return {DependencyState::kHolds, ""};
      if (t.succeeded >= t.tasks) {
        return {DependencyState::kNever,
                t.array ? fmt::format("every task of array job {} succeeded", t.id)
                        : fmt::format("job {} succeeded", t.id)};
      }
      return {DependencyState::kWaiting, Named(t) + " to fail"};
    case DependencyWhen::kAny:
      if (all_ended) return {DependencyState::kHolds, ""};
      return {DependencyState::kWaiting, Named(t) + " to end"};
  }
  return {DependencyState::kNever, "unknown when"};
}

}  // namespace sublet::coordinator

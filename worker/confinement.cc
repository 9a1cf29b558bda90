#include "worker/confinement.h"

namespace sublet::worker {
namespace {

class NothingToApply final : public PreparedConfinement {
 public:
  ChildStepStatus Apply() noexcept override { return {}; }
};

}  // namespace

absl::StatusOr<std::unique_ptr<PreparedConfinement>> NoConfinement::Prepare(
    const LaunchSpec& spec) {
  return std::make_unique<NothingToApply>();
}

}  // namespace sublet::worker

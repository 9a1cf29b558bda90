// The conformance suite under mpirun: one process per rank. Runs the mpi
// backend, and the host backend bootstrapped from Open MPI's environment (the
// same program the Sublet worker would start, unchanged). Registered with
// ctest as `mpirun -np N` for N = 1..4.
#include <gtest/gtest.h>
#include <stdlib.h>

#include "collectives/bootstrap.h"
#include "tests/collectives/conformance.h"

namespace sublet::collectives::testing {
namespace {

std::unique_ptr<Communicator> Make(BackendKind kind) {
  auto info = RankInfoFromEnv(getenv);
  EXPECT_TRUE(info.ok()) << info.status();
  if (!info.ok()) return nullptr;
  CommunicatorOptions o;
  o.backend = kind;
  o.timeout = absl::Seconds(60);
  o.shm_slot_bytes = 64 << 10;
  auto comm = CreateCommunicator(*info, o);
  EXPECT_TRUE(comm.ok()) << comm.status();
  return comm.ok() ? std::move(*comm) : nullptr;
}

class UnderMpirun : public ::testing::TestWithParam<BackendKind> {};

TEST_P(UnderMpirun, EveryOperationDtypeAndSize) {
  auto comm = Make(GetParam());
  ASSERT_NE(comm, nullptr);
  RunConformance(*comm);
}

TEST_P(UnderMpirun, SplitIntoEvenAndOddRanks) {
  auto comm = Make(GetParam());
  ASSERT_NE(comm, nullptr);
  CheckSplit(*comm);
}

INSTANTIATE_TEST_SUITE_P(Backends, UnderMpirun,
                         ::testing::Values(BackendKind::kMpi, BackendKind::kHost),
                         [](const auto& info) { return BackendKindName(info.param); });

}  // namespace
}  // namespace sublet::collectives::testing

// The conformance suite: checks every operation of a Communicator against
// values computed here. Every rank of the group calls the same Check* in the
// same order; results are EXPECTed, so the suite runs unchanged with ranks as
// threads (host backend), as processes, or under mpirun (mpi backend).
//
// Inputs are small integers (rank and index based), so sums, maxima and
// minima are exact in every dtype, bf16 included, whatever the reduction
// order; averages are computed with numeric.h's ScaleForAverage, the same
// element function the backends use.
#pragma once

#include <cstddef>
#include <vector>

#include "collectives/communicator.h"

namespace sublet::collectives::testing {

struct ConformanceOptions {
  std::vector<size_t> counts = {0, 1, 7, 1000, 100003};  // elements
  bool in_place = true;      // also run allreduce with in == out
  size_t misalign = 1;       // also run with buffers offset by this many elements
};

void CheckAllReduce(Communicator& comm, DataType type, ReduceOp op, size_t count, bool in_place,
                    size_t misalign);
void CheckReduceScatter(Communicator& comm, DataType type, ReduceOp op, size_t count);
void CheckAllGather(Communicator& comm, DataType type, size_t count);
void CheckBroadcast(Communicator& comm, DataType type, size_t count, int root);
// Each rank sends to rank+1 and receives from rank-1 (even ranks send first).
void CheckSendRecvRing(Communicator& comm, size_t count);
// Several async allreduces and allgathers in flight at once, waited out of order.
void CheckAsyncInFlight(Communicator& comm);
// Splits into even/odd ranks and checks an allreduce in each half.
void CheckSplit(Communicator& comm);

// Every operation, dtype, op and count.
void RunConformance(Communicator& comm, const ConformanceOptions& options = {});

}  // namespace sublet::collectives::testing

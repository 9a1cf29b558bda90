#include "tests/collectives/conformance.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>

#include "collectives/internal/numeric.h"

namespace sublet::collectives::testing {
namespace {

// An exactly representable small integer for (rank, index).
double Value(int rank, size_t i) { return static_cast<double>((rank + 1) * ((i % 7) + 1)); }

// Typed visitor over DataType.
template <typename F>
auto Visit(DataType t, F&& f) {
  switch (t) {
    case DataType::kF32: return f(float{});
    case DataType::kF64: return f(double{});
    case DataType::kBF16: return f(Bf16{});
    case DataType::kF16: return f(F16{});
    case DataType::kI32: return f(int32_t{});
    case DataType::kI64: return f(int64_t{});
  }
  return f(float{});
}

template <typename T>
T FromDouble(double v) {
  using C = typename Arith<T>::Compute;
  return Arith<T>::Store(static_cast<C>(v));
}

template <typename T>
double ToDouble(T v) {
  return static_cast<double>(Arith<T>::Load(v));
}

void Encode(DataType t, double v, char* p) {
  Visit(t, [&](auto z) {
    auto x = FromDouble<decltype(z)>(v);
    std::memcpy(p, &x, sizeof(x));
    return 0;
  });
}

double Decode(DataType t, const char* p) {
  return Visit(t, [&](auto z) {
    decltype(z) x;
    std::memcpy(&x, p, sizeof(x));
    return ToDouble(x);
  });
}

// The expected reduction over ranks 0..p-1 of Value(r, i).
double Expected(DataType t, ReduceOp op, int p, size_t i) {
  double sum = 0;
  for (int r = 0; r < p; ++r) sum += Value(r, i);
  switch (op) {
    case ReduceOp::kSum: return sum;
    case ReduceOp::kMax: return Value(p - 1, i);
    case ReduceOp::kMin: return Value(0, i);
    case ReduceOp::kAvg:
      return Visit(t, [&](auto z) {
        using T = decltype(z);
        return ToDouble(ScaleForAverage(FromDouble<T>(sum), p));
      });
  }
  return 0;
}

// A buffer of `count` elements starting `misalign` elements into an aligned
// allocation.
struct Buffer {
  Buffer(DataType t, size_t count, size_t misalign)
      : esz(DataTypeSize(t)), storage((count + misalign) * esz + 64), offset(misalign * esz) {}
  char* at(size_t i) { return storage.data() + offset + i * esz; }
  size_t esz;
  std::vector<char> storage;
  size_t offset;
};

std::string Label(Communicator& c, const char* op, DataType t, size_t count) {
  return std::string(op) + " " + DataTypeName(t) + " count=" + std::to_string(count) +
         " rank=" + std::to_string(c.rank()) + "/" + std::to_string(c.size());
}

// Compares `count` elements and reports the first mismatch only.
template <typename F>
void ExpectAll(DataType t, Buffer& b, size_t count, const std::string& label, F&& expected) {
  for (size_t i = 0; i < count; ++i) {
    double got = Decode(t, b.at(i)), want = expected(i);
    if (got != want) {
      ADD_FAILURE() << label << ": element " << i << " is " << got << ", expected " << want;
      return;
    }
  }
}

}  // namespace

void CheckAllReduce(Communicator& comm, DataType type, ReduceOp op, size_t count, bool in_place,
                    size_t misalign) {
  Buffer in(type, count, misalign), out(type, count, misalign);
  for (size_t i = 0; i < count; ++i) Encode(type, Value(comm.rank(), i), in.at(i));
  Buffer& result = in_place ? in : out;
  std::string label = Label(comm, "allreduce", type, count) + " op=" + ReduceOpName(op) +
                      (in_place ? " in-place" : "") + " misalign=" + std::to_string(misalign);
  ASSERT_TRUE(comm.AllReduce(in.at(0), result.at(0), count, type, op).ok()) << label;
  ExpectAll(type, result, count, label, [&](size_t i) { return Expected(type, op, comm.size(), i); });
}

void CheckReduceScatter(Communicator& comm, DataType type, ReduceOp op, size_t count) {
  const int p = comm.size();
  Buffer in(type, count * p, 0), out(type, count, 0);
  for (size_t i = 0; i < count * p; ++i) Encode(type, Value(comm.rank(), i), in.at(i));
  std::string label = Label(comm, "reduce_scatter", type, count) + " op=" + ReduceOpName(op);
  ASSERT_TRUE(comm.ReduceScatter(in.at(0), out.at(0), count, type, op).ok()) << label;
  size_t base = static_cast<size_t>(comm.rank()) * count;
  ExpectAll(type, out, count, label, [&](size_t i) { return Expected(type, op, p, base + i); });
}

void CheckAllGather(Communicator& comm, DataType type, size_t count) {
  const int p = comm.size();
  Buffer in(type, count, 0), out(type, count * p, 0);
  for (size_t i = 0; i < count; ++i) Encode(type, Value(comm.rank(), i), in.at(i));
  std::string label = Label(comm, "allgather", type, count);
  ASSERT_TRUE(comm.AllGather(in.at(0), out.at(0), count, type).ok()) << label;
  ExpectAll(type, out, count * p, label, [&](size_t i) {
    return Value(static_cast<int>(i / count), i % count);
  });
}

void CheckBroadcast(Communicator& comm, DataType type, size_t count, int root) {
  Buffer buf(type, count, 0);
  for (size_t i = 0; i < count; ++i) Encode(type, Value(comm.rank(), i), buf.at(i));
  std::string label = Label(comm, "broadcast", type, count) + " root=" + std::to_string(root);
  ASSERT_TRUE(comm.Broadcast(buf.at(0), count, type, root).ok()) << label;
  ExpectAll(type, buf, count, label, [&](size_t i) { return Value(root, i); });
}

void CheckSendRecvRing(Communicator& comm, size_t count) {
  const int p = comm.size(), me = comm.rank();
  if (p == 1) return;
  const DataType t = DataType::kI64;
  Buffer out(t, count, 0), in(t, count, 0);
  for (size_t i = 0; i < count; ++i) Encode(t, Value(me, i), out.at(i));
  const int next = (me + 1) % p, prev = (me + p - 1) % p;
  std::string label = Label(comm, "send/recv", t, count);
  WorkPtr send, recv;
  if (me % 2 == 0) {
    send = comm.SendAsync(out.at(0), count, t, next);
    recv = comm.RecvAsync(in.at(0), count, t, prev);
  } else {
    recv = comm.RecvAsync(in.at(0), count, t, prev);
    send = comm.SendAsync(out.at(0), count, t, next);
  }
  ASSERT_TRUE(send->Wait().ok()) << label;
  ASSERT_TRUE(recv->Wait().ok()) << label;
  ExpectAll(t, in, count, label, [&](size_t i) { return Value(prev, i); });
}

void CheckAsyncInFlight(Communicator& comm) {
  const DataType t = DataType::kF32;
  const size_t count = 4099;
  const int p = comm.size();
  std::vector<Buffer> bufs;
  for (int k = 0; k < 4; ++k) bufs.emplace_back(t, count, 0);
  Buffer gathered(t, count * p, 0);
  for (int k = 0; k < 4; ++k) {
    for (size_t i = 0; i < count; ++i) Encode(t, Value(comm.rank(), i + k), bufs[k].at(i));
  }
  std::vector<WorkPtr> works;
  for (int k = 0; k < 3; ++k) {
    works.push_back(comm.AllReduceAsync(bufs[k].at(0), bufs[k].at(0), count, t, ReduceOp::kSum));
  }
  works.push_back(comm.AllGatherAsync(bufs[3].at(0), gathered.at(0), count, t));
  for (int k = 3; k >= 0; --k) ASSERT_TRUE(works[k]->Wait().ok()) << works[k]->op();
  for (auto& w : works) EXPECT_TRUE(w->Test());
  for (int k = 0; k < 3; ++k) {
    ExpectAll(t, bufs[k], count, Label(comm, "async allreduce", t, count),
              [&](size_t i) { return Expected(t, ReduceOp::kSum, p, i + k); });
  }
  ExpectAll(t, gathered, count * p, Label(comm, "async allgather", t, count), [&](size_t i) {
    return Value(static_cast<int>(i / count), i % count + 3);
  });
}

void CheckSplit(Communicator& comm) {
  auto half = comm.Split(comm.rank() % 2, comm.rank());
  ASSERT_TRUE(half.ok()) << half.status();
  Communicator& sub = **half;
  const int p = comm.size();
  EXPECT_EQ(sub.size(), (p + 1 - comm.rank() % 2) / 2);
  EXPECT_EQ(sub.rank(), comm.rank() / 2);
  int64_t v = comm.rank();
  ASSERT_TRUE(sub.AllReduce(&v, &v, 1, DataType::kI64, ReduceOp::kSum).ok());
  int64_t want = 0;
  for (int r = comm.rank() % 2; r < p; r += 2) want += r;
  EXPECT_EQ(v, want);
  // A rank leaving the split (negative color) gets no communicator.
  auto none = comm.Split(comm.rank() == 0 ? -1 : 1, 0);
  ASSERT_TRUE(none.ok()) << none.status();
  EXPECT_EQ(*none == nullptr, comm.rank() == 0);
}

void RunConformance(Communicator& comm, const ConformanceOptions& options) {
  for (DataType t : kAllDataTypes) {
    for (size_t count : options.counts) {
      for (ReduceOp op : kAllReduceOps) CheckAllReduce(comm, t, op, count, false, 0);
      CheckReduceScatter(comm, t, ReduceOp::kSum, count);
      CheckAllGather(comm, t, count);
      CheckBroadcast(comm, t, count, comm.size() - 1);
    }
    if (options.in_place) CheckAllReduce(comm, t, ReduceOp::kSum, 1001, true, 0);
    if (options.misalign) CheckAllReduce(comm, t, ReduceOp::kMax, 1001, false, options.misalign);
    CheckReduceScatter(comm, t, ReduceOp::kAvg, 333);
    CheckReduceScatter(comm, t, ReduceOp::kMin, 333);
  }
  CheckSendRecvRing(comm, 12345);
  CheckAsyncInFlight(comm);
  EXPECT_TRUE(comm.Barrier().ok());
}

}  // namespace sublet::collectives::testing

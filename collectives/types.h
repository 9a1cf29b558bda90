// Element types and reduction operators every backend supports.
#pragma once

#include <cstddef>
#include <string>

namespace sublet::collectives {

enum class DataType { kF32, kF64, kBF16, kF16, kI32, kI64 };

// kAvg is a sum divided by the group size (integer types truncate).
enum class ReduceOp { kSum, kAvg, kMax, kMin };

inline constexpr DataType kAllDataTypes[] = {DataType::kF32,  DataType::kF64, DataType::kBF16,
                                             DataType::kF16,  DataType::kI32, DataType::kI64};
inline constexpr ReduceOp kAllReduceOps[] = {ReduceOp::kSum, ReduceOp::kAvg, ReduceOp::kMax,
                                             ReduceOp::kMin};

constexpr size_t DataTypeSize(DataType t) {
  switch (t) {
    case DataType::kF32: return 4;
    case DataType::kF64: return 8;
    case DataType::kBF16: return 2;
    case DataType::kF16: return 2;
    case DataType::kI32: return 4;
    case DataType::kI64: return 8;
  }
  return 0;
}

std::string DataTypeName(DataType t);
std::string ReduceOpName(ReduceOp op);

}  // namespace sublet::collectives

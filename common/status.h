// Status and StatusOr are abseil's; this header adds the propagation macros
// used everywhere in Sublet. Recoverable failures are values, never exceptions.
#pragma once

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define SUBLET_CONCAT_INNER_(a, b) a##b
#define SUBLET_CONCAT_(a, b) SUBLET_CONCAT_INNER_(a, b)

// Returns the status from the enclosing function when `expr` is not OK.
#define SUBLET_RETURN_IF_ERROR(expr)              \
  do {                                            \
    ::absl::Status sublet_status_ = (expr);       \
    if (!sublet_status_.ok()) return sublet_status_; \
  } while (0)

// `SUBLET_ASSIGN_OR_RETURN(auto x, F())` declares x from F()'s value, or
// returns F()'s status from the enclosing function.
#define SUBLET_ASSIGN_OR_RETURN(lhs, expr) \
  SUBLET_ASSIGN_OR_RETURN_IMPL_(SUBLET_CONCAT_(sublet_statusor_, __LINE__), lhs, expr)
#define SUBLET_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                                  \
  if (!tmp.ok()) return std::move(tmp).status();      \
  lhs = std::move(tmp).value()

// Structured log lines: one event per line, `key=value` fields, written to
// stderr. Every line about a job carries `job=<id>` so `grep job=42` finds its
// whole history across daemons. Example:
//   2026-11-26T05:40:00.123Z info coordinator job_started job=42 attempt=1 nodes=n1,n2
// Thread-safe (spdlog's stderr sink is locked).
#pragma once

#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>

namespace sublet {

enum class LogLevel { kDebug, kInfo, kWarn, kError };

struct LogField {
  LogField(std::string_view k, std::string_view v) : key(k), value(v) {}
  LogField(std::string_view k, const char* v) : key(k), value(v) {}
  LogField(std::string_view k, const std::string& v) : key(k), value(v) {}
  template <typename T>
    requires std::is_arithmetic_v<T>
  LogField(std::string_view k, T v) : key(k), value(std::to_string(v)) {}
  std::string_view key;
  std::string value;
};

// Names the process in every line and sets the level from `level`
// ("debug", "info", "warn", "error"; anything else keeps "info").
void InitLogging(std::string_view component, std::string_view level = "info");

void Log(LogLevel level, std::string_view event, std::initializer_list<LogField> fields = {});

}  // namespace sublet

// `sublet logs JOB [--rank N | --all-ranks] [--attempt A] [-f]`: rank output,
// read from the coordinator in chunks (it proxies to the node that ran the
// rank). With --all-ranks every line is prefixed "[rank N] ": without -f each
// rank's log in turn, with -f interleaved line by line as they come.
//
// Following (-f) works in rounds every kPollInterval:
//   1. read every chunk available now, for each followed rank of the attempt
//      being followed;
//   2. when the job is final, stop once every followed log is complete; if
//      the job has moved on to a newer attempt (a restart or a resume after
//      preemption) and no --attempt was given, follow that one from offset 0;
//   3. a job that is final but whose log never reports complete (its node was
//      lost) is given kFinalGraceRounds more rounds, then left.
// A follower outlives a coordinator restart or a node that has not
// reconnected yet: a transient failure (Unavailable, ResourceExhausted) is
// retried with a backoff doubling from kPollInterval up to kMaxBackoff, with
// one notice on stderr per outage, until the job ends. Ctrl-C stops it.
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <string_view>
#include <thread>

#include "client/cli/cli.h"
#include "protocols/ids.h"

namespace sublet::client::cli {
namespace {

constexpr std::chrono::milliseconds kPollInterval{300};
constexpr std::chrono::milliseconds kMaxBackoff{5000};
constexpr int kFinalGraceRounds = 10;

struct LogsFlags {
  std::string job;  // as given; parsed into job_id before anything is sent
  uint64_t job_id = 0;
  uint32_t rank = 0;
  uint32_t attempt = 0;  // 0: the latest
  bool follow = false;
  bool all_ranks = false;
};

using Sink = std::function<void(std::string_view)>;

// One rank's output. Without a prefix, bytes go out as they come; with one,
// whole lines go out behind it, and a partial line waits for its end (or
// Finish), so lines of ranks followed together never mix.
class RankOutput {
 public:
  RankOutput(std::string prefix, Sink sink) : prefix_(std::move(prefix)), sink_(std::move(sink)) {}

  void Write(std::string_view data) {
    if (prefix_.empty()) {
      sink_(data);
      return;
    }
    partial_.append(data);
    size_t start = 0;
    std::string lines;
    for (size_t nl; (nl = partial_.find('\n', start)) != std::string::npos; start = nl + 1) {
      lines += prefix_;
      lines.append(partial_, start, nl + 1 - start);
    }
    partial_.erase(0, start);
    if (!lines.empty()) sink_(lines);
  }
  // Ends a last line that has no newline.
  void Finish() {
    if (partial_.empty()) return;
    sink_(prefix_ + partial_ + "\n");
    partial_.clear();
  }

 private:
  std::string prefix_;
  Sink sink_;
  std::string partial_;
};

struct RankCursor {
  uint32_t rank = 0;
  uint64_t offset = 0;
  bool complete = false;
};

// A coordinator restarting, a node not reconnected yet, a log proxy timing
// out, a throttled connection: worth waiting for when following.
bool IsTransient(const absl::Status& status) {
  return absl::IsUnavailable(status) || absl::IsResourceExhausted(status);
}

// Waits out transient failures (see the top of the file).
class Patience {
 public:
  explicit Patience(std::ostream& err) : err_(err) {}

  // Sleeps the backoff after a transient failure, with a notice on the first
  // of an outage; false, at once, for any other failure.
  bool Absorb(const absl::Status& status) {
    if (!IsTransient(status)) return false;
    Notice(status);
    std::this_thread::sleep_for(backoff_);  // waiting for the coordinator or node to be back
    backoff_ = std::min(backoff_ * 2, kMaxBackoff);
    return true;
  }

  // The notice alone, once per outage.
  void Notice(const absl::Status& status) {
    if (!noticed_) {
      const std::string cause(status.message());
      err_ << (cause.starts_with("cannot reach coordinator")
                   ? fmt::format("sublet: coordinator unreachable, retrying... ({})", cause)
                   : fmt::format("sublet: {}; retrying...", cause))
           << std::endl;
      noticed_ = true;
    }
  }

  // `call()` until it succeeds or fails for good.
  template <typename F>
  auto Call(F call) -> decltype(call()) {
    while (true) {
      auto result = call();
      if (result.ok() || !Absorb(result.status())) return result;
    }
  }

  // A whole round went through: a later outage gets its own notice.
  void Recovered() {
    noticed_ = false;
    backoff_ = kPollInterval;
  }

 private:
  std::ostream& err_;
  bool noticed_ = false;
  std::chrono::milliseconds backoff_ = kPollInterval;
};

// Reads everything available for `cursor` now, advancing it.
absl::Status Drain(Client& client, const LogsFlags& flags, uint32_t attempt, RankCursor& cursor,
                   RankOutput& output) {
  protocols::ReadLogsRequest request{
      .job_id = flags.job_id, .rank = cursor.rank, .attempt = attempt, .offset = cursor.offset};
  while (!cursor.complete) {
    SUBLET_ASSIGN_OR_RETURN(protocols::LogsReply reply, client.ReadLogs(request));
    if (!reply.data.empty()) output.Write(reply.data);
    request.offset = cursor.offset = reply.next_offset;
    cursor.complete = reply.complete;
    if (reply.data.empty()) break;
  }
  return absl::OkStatus();
}

// The ranks to read for `attempt` of `job`: the one asked for, or all. For
// an earlier attempt than the latest the count is not known here: the spec's
// world size is tried, and ranks the attempt did not have are dropped when
// the coordinator says so.
std::vector<RankCursor> RanksOf(const protocols::JobInfo& job, const LogsFlags& flags,
                                uint32_t attempt) {
  if (!flags.all_ranks) return {RankCursor{.rank = flags.rank}};
  const size_t count = attempt == job.attempt ? job.ranks.size() : job.spec.WorldSize();
  std::vector<RankCursor> ranks;
  for (uint32_t r = 0; r < std::max<size_t>(count, 1); ++r) ranks.push_back({.rank = r});
  return ranks;
}

class Logs {
 public:
  // `sink_for(rank)`: where that rank's output goes; with --all-ranks, line
  // by line behind "[rank N] " when `prefix_lines` (not for JSON).
  Logs(Client& client, const LogsFlags& flags, std::function<Sink(uint32_t)> sink_for,
       bool prefix_lines, std::ostream& err)
      : client_(client),
        flags_(flags),
        sink_for_(std::move(sink_for)),
        prefix_lines_(prefix_lines),
        err_(err),
        patience_(err) {}

  // Without -f: each rank's log in turn, as far as it goes now.
  absl::Status PrintOnce() {
    uint32_t attempt = flags_.attempt;
    std::vector<RankCursor> ranks = {RankCursor{.rank = flags_.rank}};
    if (flags_.all_ranks) {
      SUBLET_ASSIGN_OR_RETURN(protocols::JobInfo job, client_.GetJob(flags_.job_id));
      if (attempt == 0) attempt = job.attempt;
      ranks = RanksOf(job, flags_, attempt);
    }
    for (RankCursor& cursor : ranks) {
      absl::Status read = Drain(client_, flags_, attempt, cursor, Output(cursor.rank));
      if (Beyond(read, cursor)) break;
      SUBLET_RETURN_IF_ERROR(read);
      Output(cursor.rank).Finish();
    }
    return absl::OkStatus();
  }

  absl::Status Follow() {
    uint32_t attempt = 0;
    std::vector<RankCursor> ranks;
    int final_rounds = 0;
    while (true) {
      SUBLET_ASSIGN_OR_RETURN(protocols::JobInfo job,
                              patience_.Call([&] { return client_.GetJob(flags_.job_id); }));
      const bool final_state = IsFinalState(job.state);
      const uint32_t wanted = flags_.attempt != 0 ? flags_.attempt : job.attempt;
      if (wanted != 0 && wanted != attempt) {
        if (attempt != 0) {
          absl::Status tail = DrainAll(attempt, ranks);  // the old attempt's tail, if it can
          if (!tail.ok() && !IsTransient(tail)) return tail;
          FinishAll();
          err_ << fmt::format("--- attempt {} ---", wanted) << std::endl;
        }
        attempt = wanted;
        ranks = RanksOf(job, flags_, attempt);
        outputs_.clear();
      }
      if (attempt == 0 && final_state) return absl::OkStatus();  // never ran
      const absl::Status round = attempt != 0 ? DrainAll(attempt, ranks) : absl::OkStatus();
      if (!round.ok() && !IsTransient(round)) return round;
      const bool complete =
          attempt != 0 &&
          std::all_of(ranks.begin(), ranks.end(), [](const RankCursor& c) { return c.complete; });
      if (final_state && ((round.ok() && complete) || ++final_rounds > kFinalGraceRounds)) {
        FinishAll();
        return round;  // a final job whose node stayed unreachable: that error
      }
      if (round.ok()) {
        patience_.Recovered();
      } else if (!final_state) {
        patience_.Absorb(round);
        continue;
      } else {
        patience_.Notice(round);  // a final job gets its grace rounds at the poll interval
      }
      std::this_thread::sleep_for(kPollInterval);
    }
  }

 private:
  RankOutput& Output(uint32_t rank) {
    auto it = outputs_.find(rank);
    if (it == outputs_.end()) {
      std::string prefix = flags_.all_ranks && prefix_lines_ ? fmt::format("[rank {}] ", rank) : "";
      it = outputs_.emplace(rank, RankOutput(std::move(prefix), sink_for_(rank))).first;
    }
    return it->second;
  }

  // A rank the attempt did not have (see RanksOf): it and the ones after it
  // are dropped.
  bool Beyond(const absl::Status& read, const RankCursor& cursor) const {
    return flags_.all_ranks && cursor.rank > 0 && absl::IsInvalidArgument(read);
  }

  absl::Status DrainAll(uint32_t attempt, std::vector<RankCursor>& ranks) {
    for (size_t i = 0; i < ranks.size(); ++i) {
      absl::Status read = Drain(client_, flags_, attempt, ranks[i], Output(ranks[i].rank));
      if (Beyond(read, ranks[i])) {
        ranks.resize(i);
        break;
      }
      SUBLET_RETURN_IF_ERROR(read);
    }
    return absl::OkStatus();
  }

  void FinishAll() {
    for (auto& [rank, output] : outputs_) output.Finish();
  }

  Client& client_;
  const LogsFlags& flags_;
  std::function<Sink(uint32_t)> sink_for_;
  const bool prefix_lines_;
  std::ostream& err_;
  Patience patience_;
  std::map<uint32_t, RankOutput> outputs_;
};

int RunLogs(LogsFlags flags, Session& session) {
  absl::StatusOr<uint64_t> id = protocols::ParseId("job", flags.job);
  if (!id.ok()) return session.Fail(id.status());
  flags.job_id = *id;
  absl::StatusOr<Client*> client = session.client();
  if (!client.ok()) return session.Fail(client.status());
  std::map<uint32_t, std::string> collected;  // json mode: per rank
  auto sink_for = [&](uint32_t rank) -> Sink {
    if (session.json()) {
      return [&collected, rank](std::string_view d) { collected[rank].append(d); };
    }
    return [&session](std::string_view data) {
      session.out().write(data.data(), static_cast<std::streamsize>(data.size()));
      session.out().flush();
    };
  };
  Logs logs(**client, flags, sink_for, /*prefix_lines=*/!session.json(), session.err());
  absl::Status status = flags.follow ? logs.Follow() : logs.PrintOnce();
  if (!status.ok()) return session.Fail(status);
  if (!session.json()) return 0;
  if (!flags.all_ranks) {
    return session.PrintJson({{"job", std::to_string(flags.job_id)},
                              {"rank", flags.rank},
                              {"data", collected[flags.rank]}});
  }
  nlohmann::json ranks = nlohmann::json::array();
  for (const auto& [rank, data] : collected) ranks.push_back({{"rank", rank}, {"data", data}});
  return session.PrintJson({{"job", std::to_string(flags.job_id)}, {"ranks", ranks}});
}

}  // namespace

void AddLogsCommand(CLI::App& app, Command* chosen) {
  auto flags = std::make_shared<LogsFlags>();
  CLI::App* cmd = app.add_subcommand(
      "logs",
      "Print a rank's output (stdout and stderr) as raw bytes, or with --all-ranks every "
      "rank's, each line prefixed \"[rank N] \". With -f, keep following until the job ends, "
      "waiting out a coordinator restart.");
  cmd->add_option("job", flags->job, "Job id")->required();
  CLI::Option* rank =
      cmd->add_option("--rank", flags->rank, "Global rank whose output to print (default 0)");
  cmd->add_flag("--all-ranks", flags->all_ranks,
                "Every rank's output, each line prefixed \"[rank N] \" (with -f: interleaved "
                "as it comes)")
      ->excludes(rank);
  cmd->add_option("--attempt", flags->attempt,
                  "Attempt number (1 = first run; default: the latest)")
      ->check(CLI::PositiveNumber);
  cmd->add_flag("-f,--follow", flags->follow, "Keep printing new output until the job ends");
  cmd->callback([chosen, flags] {
    *chosen = [flags](Session& session) { return RunLogs(*flags, session); };
  });
}

}  // namespace sublet::client::cli

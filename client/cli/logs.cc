// `sublet logs JOB [--rank N] [--attempt A] [-f]`: a rank's output, read from
// the coordinator in chunks (it proxies to the node that ran the rank).
//
// Following (-f) works in rounds every kPollInterval:
//   1. read every chunk available now for the attempt being followed;
//   2. when the rank's log is complete, stop if the job is final; if the job
//      has moved on to a newer attempt (a restart or a resume after
//      preemption) and no --attempt was given, follow that one from offset 0;
//   3. a job that is final but whose log never reports complete (its node was
//      lost) is given kFinalGraceRounds more rounds, then left.
#include <fmt/format.h>

#include <chrono>
#include <functional>
#include <memory>
#include <string_view>
#include <thread>

#include "client/cli/cli.h"
#include "protocols/ids.h"

namespace sublet::client::cli {
namespace {

constexpr std::chrono::milliseconds kPollInterval{300};
constexpr int kFinalGraceRounds = 10;

struct LogsFlags {
  std::string job;  // as given; parsed into job_id before anything is sent
  uint64_t job_id = 0;
  uint32_t rank = 0;
  uint32_t attempt = 0;  // 0: the latest
  bool follow = false;
};

using Sink = std::function<void(std::string_view)>;

// Reads everything available from request.offset on, advancing it. Returns
// whether the log is complete.
absl::StatusOr<bool> Drain(Client& client, protocols::ReadLogsRequest& request, const Sink& sink) {
  while (true) {
    SUBLET_ASSIGN_OR_RETURN(protocols::LogsReply reply, client.ReadLogs(request));
    if (!reply.data.empty()) sink(reply.data);
    request.offset = reply.next_offset;
    if (reply.complete) return true;
    if (reply.data.empty()) return false;
  }
}

absl::Status Follow(Client& client, const LogsFlags& flags, const Sink& sink, std::ostream& err) {
  protocols::ReadLogsRequest request{
      .job_id = flags.job_id, .rank = flags.rank, .attempt = flags.attempt};
  int final_rounds = 0;
  while (true) {
    SUBLET_ASSIGN_OR_RETURN(protocols::JobInfo job, client.GetJob(flags.job_id));
    const bool final_state = IsFinalState(job.state);
    if (flags.attempt == 0 && job.attempt > request.attempt) {
      if (request.attempt != 0) {
        SUBLET_RETURN_IF_ERROR(Drain(client, request, sink).status());  // the old tail
        err << fmt::format("--- attempt {} ---", job.attempt) << std::endl;
      }
      request.attempt = job.attempt;
      request.offset = 0;
    }
    if (request.attempt == 0 && final_state) return absl::OkStatus();  // never ran
    if (request.attempt != 0) {
      SUBLET_ASSIGN_OR_RETURN(bool complete, Drain(client, request, sink));
      if (final_state && (complete || ++final_rounds > kFinalGraceRounds)) {
        return absl::OkStatus();
      }
    }
    std::this_thread::sleep_for(kPollInterval);
  }
}

int RunLogs(LogsFlags flags, Session& session) {
  absl::StatusOr<uint64_t> id = protocols::ParseId("job", flags.job);
  if (!id.ok()) return session.Fail(id.status());
  flags.job_id = *id;
  absl::StatusOr<Client*> client = session.client();
  if (!client.ok()) return session.Fail(client.status());
  std::string collected;
  Sink sink = [&](std::string_view data) {
    if (session.json()) {
      collected.append(data);
    } else {
      session.out().write(data.data(), static_cast<std::streamsize>(data.size()));
      session.out().flush();
    }
  };
  absl::Status status;
  if (flags.follow) {
    status = Follow(**client, flags, sink, session.err());
  } else {
    protocols::ReadLogsRequest request{
        .job_id = flags.job_id, .rank = flags.rank, .attempt = flags.attempt};
    status = Drain(**client, request, sink).status();
  }
  if (!status.ok()) return session.Fail(status);
  if (session.json()) {
    return session.PrintJson(
        {{"job", std::to_string(flags.job_id)}, {"rank", flags.rank}, {"data", collected}});
  }
  return 0;
}

}  // namespace

void AddLogsCommand(CLI::App& app, Command* chosen) {
  auto flags = std::make_shared<LogsFlags>();
  CLI::App* cmd =
      app.add_subcommand("logs",
                         "Print a rank's output (stdout and stderr) as raw bytes. With -f, keep "
                         "following it until the job ends.");
  cmd->add_option("job", flags->job, "Job id")->required();
  cmd->add_option("--rank", flags->rank, "Global rank whose output to print (default 0)");
  cmd->add_option("--attempt", flags->attempt,
                  "Attempt number (1 = first run; default: the latest)")
      ->check(CLI::PositiveNumber);
  cmd->add_flag("-f,--follow", flags->follow, "Keep printing new output until the job ends");
  cmd->callback([chosen, flags] {
    *chosen = [flags](Session& session) { return RunLogs(*flags, session); };
  });
}

}  // namespace sublet::client::cli

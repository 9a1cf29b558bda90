// `sublet jobs [--all] [--state S] [--name GLOB] [--array ID]`, `sublet show JOB`,
// `sublet cancel (JOB | --name GLOB | --array ID)`. The filters are applied here, to the
// list the coordinator returns.
#include <fmt/format.h>
#include <fnmatch.h>

#include <algorithm>
#include <memory>

#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "client/cli/cli.h"
#include "protocols/ids.h"

namespace sublet::client::cli {
namespace {

constexpr const char* kJobStates[] = {"pending",   "running", "preempting",
                                      "succeeded", "failed",  "cancelled"};

struct JobFilter {
  std::vector<std::string> states;  // empty: any (CLI11 splits "a,b" and repeats)
  std::string name_glob;            // empty: any (fnmatch(3) pattern)
  uint64_t array_id = 0;            // 0: any; else only that array's tasks
};

// --array takes a job id; 0 (no filter) is not one.
absl::StatusOr<uint64_t> ParseArrayFlag(const std::string& text) {
  if (text.empty()) return 0;
  absl::StatusOr<uint64_t> id = protocols::ParseId("job", text);
  if (!id.ok()) {
    return absl::InvalidArgumentError(
        fmt::format("--array: '{}' is not an array's job id", text));
  }
  return *id;
}

// InvalidArgument naming the first state that is not a job state.
absl::Status CheckStates(const std::vector<std::string>& states) {
  for (const std::string& state : states) {
    if (std::find(std::begin(kJobStates), std::end(kJobStates), state) == std::end(kJobStates)) {
      return absl::InvalidArgumentError(
          fmt::format("--state: '{}' is not a job state (one of {})", state,
                      absl::StrJoin(std::begin(kJobStates), std::end(kJobStates), ", ")));
    }
  }
  return absl::OkStatus();
}

bool Matches(const JobFilter& filter, const protocols::JobInfo& job) {
  if (filter.array_id != 0 && job.array_id != filter.array_id) return false;
  if (!filter.states.empty() &&
      std::find(filter.states.begin(), filter.states.end(), job.state) == filter.states.end()) {
    return false;
  }
  return filter.name_glob.empty() || fnmatch(filter.name_glob.c_str(), job.name.c_str(), 0) == 0;
}

int RunJobs(bool all, JobFilter filter, const std::string& array, Session& session) {
  if (absl::Status bad = CheckStates(filter.states); !bad.ok()) return session.Fail(bad);
  absl::StatusOr<uint64_t> array_id = ParseArrayFlag(array);
  if (!array_id.ok()) return session.Fail(array_id.status());
  filter.array_id = *array_id;
  absl::StatusOr<Client*> client = session.client();
  if (!client.ok()) return session.Fail(client.status());
  absl::StatusOr<std::vector<protocols::JobInfo>> listed = (*client)->ListJobs(all);
  if (!listed.ok()) return session.Fail(listed.status());
  std::vector<protocols::JobInfo> jobs;
  for (auto& job : *listed) {
    if (Matches(filter, job)) jobs.push_back(std::move(job));
  }
  if (session.json()) {
    nlohmann::json list = nlohmann::json::array();
    for (const auto& job : jobs) list.push_back(JobToJson(job, /*detailed=*/false));
    return session.PrintJson({{"jobs", list}, {"tenants", TenantTotalsToJson(jobs)}});
  }
  session.out() << RenderJobsTable(jobs, absl::Now());
  return 0;
}

// The JOB argument is checked before anything is sent: a malformed id is
// InvalidArgument (exit 2), not the coordinator's "not found".
int RunShow(const std::string& arg, Session& session) {
  absl::StatusOr<uint64_t> id = protocols::ParseId("job", arg);
  if (!id.ok()) return session.Fail(id.status());
  absl::StatusOr<Client*> client = session.client();
  if (!client.ok()) return session.Fail(client.status());
  absl::StatusOr<protocols::JobInfo> job = (*client)->GetJob(*id);
  if (!job.ok()) return session.Fail(job.status());
  if (session.json()) return session.PrintJson(JobToJson(*job, /*detailed=*/true));
  session.out() << RenderJobDetail(*job, absl::Now());
  return 0;
}

int RunCancelOne(uint64_t id, Session& session) {
  absl::StatusOr<Client*> client = session.client();
  if (!client.ok()) return session.Fail(client.status());
  absl::StatusOr<protocols::JobInfo> job = (*client)->Cancel(id);
  if (!job.ok()) return session.Fail(job.status());
  if (session.json()) return session.PrintJson(JobToJson(*job, /*detailed=*/false));
  session.out() << "job " << job->id << ": " << job->state << std::endl;
  return 0;
}

// Cancels every unfinished job `sublet jobs` lists for the caller (a
// tenant's own; an admin's: everyone's) that the filter matches (a name
// glob, an array). A job that ended between the listing and its cancel is
// reported and skipped; any other failure is reported and decides the exit
// code once the rest are done.
int RunCancelMatching(const JobFilter& filter, const std::string& what, Session& session) {
  absl::StatusOr<Client*> client = session.client();
  if (!client.ok()) return session.Fail(client.status());
  absl::StatusOr<std::vector<protocols::JobInfo>> listed = (*client)->ListJobs(/*all=*/false);
  if (!listed.ok()) return session.Fail(listed.status());
  nlohmann::json cancelled = nlohmann::json::array();
  absl::Status first_error;
  int matched = 0;
  for (const protocols::JobInfo& job : *listed) {
    if (IsFinalState(job.state) || !Matches(filter, job)) continue;
    ++matched;
    absl::StatusOr<protocols::JobInfo> now = (*client)->Cancel(job.id);
    if (!now.ok()) {
      if (!session.json()) {
        session.err() << fmt::format("sublet: job {}: {}", job.id,
                                     std::string(now.status().message()))
                      << std::endl;
      }
      if (!absl::IsFailedPrecondition(now.status()) && first_error.ok()) {
        first_error = now.status();
      }
      continue;
    }
    if (session.json()) {
      cancelled.push_back(JobToJson(*now, /*detailed=*/false));
    } else {
      session.out() << "job " << now->id << ": " << now->state << std::endl;
    }
  }
  if (matched == 0) {
    return session.Fail(absl::NotFoundError(fmt::format("no unfinished job {}", what)));
  }
  if (!first_error.ok()) {
    return session.json() ? session.Fail(first_error) : ExitCodeFor(first_error);
  }
  if (session.json()) return session.PrintJson({{"jobs", cancelled}});
  return 0;
}

int RunCancel(const std::string& arg, const std::string& glob, const std::string& array,
              Session& session) {
  if (int(!arg.empty()) + int(!glob.empty()) + int(!array.empty()) != 1) {
    return session.Fail(
        absl::InvalidArgumentError("give one of JOB, --name GLOB or --array ID (exactly one)"));
  }
  if (!glob.empty()) {
    return RunCancelMatching({.states = {}, .name_glob = glob, .array_id = 0},
                             fmt::format("has a name matching --name '{}'", glob), session);
  }
  if (!array.empty()) {
    absl::StatusOr<uint64_t> array_id = ParseArrayFlag(array);
    if (!array_id.ok()) return session.Fail(array_id.status());
    return RunCancelMatching({.states = {}, .name_glob = "", .array_id = *array_id},
                             fmt::format("is a task of array job {} (--array)", *array_id), session);
  }
  absl::StatusOr<uint64_t> id = protocols::ParseId("job", arg);
  if (!id.ok()) return session.Fail(id.status());
  return RunCancelOne(*id, session);
}

}  // namespace

void AddJobCommands(CLI::App& app, Command* chosen) {
  auto all = std::make_shared<bool>(false);
  auto filter = std::make_shared<JobFilter>();
  CLI::App* jobs = app.add_subcommand(
      "jobs",
      "List your jobs: id, name, tenant, state, nodes, restarts, preemptions, age, "
      "reason (admins: every tenant's). Jobs that ended more than an hour ago only with --all.");
  jobs->add_flag("--all", *all, "Also jobs that ended more than an hour ago");
  jobs->add_option("--state", filter->states,
                   "Only jobs in these states (repeat it or give a comma list): pending, "
                   "running, preempting, succeeded, failed, cancelled")
      ->delimiter(',');
  jobs->add_option("--name", filter->name_glob,
                   "Only jobs whose name matches this shell glob, e.g. 'sweep-*'");
  auto jobs_array = std::make_shared<std::string>();
  jobs->add_option("--array", *jobs_array, "Only the tasks of this job array (its id)");
  jobs->callback([chosen, all, filter, jobs_array] {
    *chosen = [all, filter, jobs_array](Session& session) {
      return RunJobs(*all, *filter, *jobs_array, session);
    };
  });

  auto show_id = std::make_shared<std::string>();
  CLI::App* show =
      app.add_subcommand("show",
                         "Show one job: state and reason, spec summary (checkpointing, env keys, "
                         "progress timeout, preemption signal), the first start and each "
                         "attempt's, placement of each rank, restarts, preemptions, last "
                         "checkpoint and its event history.");
  show->add_option("job", *show_id, "Job id")->required();
  show->callback([chosen, show_id] {
    *chosen = [show_id](Session& session) { return RunShow(*show_id, session); };
  });

  auto cancel_id = std::make_shared<std::string>();
  auto cancel_glob = std::make_shared<std::string>();
  CLI::App* cancel = app.add_subcommand(
      "cancel",
      "Cancel a job, or with --name every unfinished job whose name matches, or with --array "
      "every unfinished task of an array (its ranks get SIGTERM, then SIGKILL after a grace "
      "period), and print each one's new state. Exit 3 when --name or --array matches none.");
  cancel->add_option("job", *cancel_id, "Job id");
  cancel->add_option("--name", *cancel_glob,
                     "Cancel every unfinished job whose name matches this shell glob");
  auto cancel_array = std::make_shared<std::string>();
  cancel->add_option("--array", *cancel_array,
                     "Cancel every unfinished task of this job array (its id)");
  cancel->callback([chosen, cancel_id, cancel_glob, cancel_array] {
    *chosen = [cancel_id, cancel_glob, cancel_array](Session& session) {
      return RunCancel(*cancel_id, *cancel_glob, *cancel_array, session);
    };
  });
}

}  // namespace sublet::client::cli

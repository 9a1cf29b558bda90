// `sublet submit SPEC.yaml [--array LIST[%N]] [--depends-on JOB[:WHEN]]... [--wait]`.
#include <fmt/format.h>

#include <chrono>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>
#include <thread>

#include "client/cli/cli.h"
#include "common/plural.h"
#include "protocols/ids.h"
#include "protocols/job_spec.h"

namespace sublet::client::cli {
namespace {

constexpr std::chrono::milliseconds kPollInterval{300};

struct SubmitFlags {
  std::string spec_path;
  std::string array;                    // overrides the spec's `array`
  std::vector<std::string> depends_on;  // appended to the spec's depends_on
  bool wait = false;
};

absl::StatusOr<protocols::JobSpec> LoadSpec(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::InvalidArgumentError(fmt::format("{}: cannot read the file", path));
  std::stringstream text;
  text << in.rdbuf();
  absl::StatusOr<protocols::JobSpec> spec = protocols::ParseJobSpecYaml(text.str());
  if (!spec.ok()) {
    return absl::InvalidArgumentError(
        fmt::format("{}: {}", path, std::string(spec.status().message())));
  }
  return spec;
}

// "12", "12:succeeded", "12:failed" or "12:any".
absl::StatusOr<protocols::Dependency> ParseDependsOn(const std::string& text) {
  protocols::Dependency dep;
  const size_t colon = text.find(':');
  absl::StatusOr<uint64_t> id = protocols::ParseId("job", text.substr(0, colon));
  if (!id.ok()) {
    return absl::InvalidArgumentError(
        fmt::format("--depends-on: '{}' is not JOB or JOB:WHEN (WHEN: succeeded, failed, any)",
                    text));
  }
  dep.job = *id;
  if (colon == std::string::npos) return dep;
  const std::string when = text.substr(colon + 1);
  std::optional<protocols::DependencyWhen> named = protocols::DependencyWhenFromName(when);
  if (!named) {
    return absl::InvalidArgumentError(fmt::format(
        "--depends-on: '{}' after ':' is not succeeded, failed or any", when));
  }
  dep.when = *named;
  return dep;
}

// The spec file with the flags applied, validated as the coordinator will.
absl::StatusOr<protocols::JobSpec> SpecWithFlags(const SubmitFlags& flags) {
  SUBLET_ASSIGN_OR_RETURN(protocols::JobSpec spec, LoadSpec(flags.spec_path));
  if (!flags.array.empty()) {
    absl::Status array = protocols::ParseArraySpec(flags.array, {}).status();
    if (!array.ok()) return absl::InvalidArgumentError("--" + std::string(array.message()));
    spec.array = flags.array;
  }
  for (const std::string& text : flags.depends_on) {
    SUBLET_ASSIGN_OR_RETURN(protocols::Dependency dep, ParseDependsOn(text));
    spec.depends_on.push_back(dep);
  }
  absl::Status valid = protocols::ValidateJobSpec(spec);
  if (!valid.ok()) {
    return absl::InvalidArgumentError(
        fmt::format("{}: {}", flags.spec_path, std::string(valid.message())));
  }
  return spec;
}

std::string Progress(const protocols::JobInfo& job) {
  std::string line = fmt::format("job {}: {}", job.id, job.state);
  if (job.attempt > 0) line += fmt::format(" (attempt {})", job.attempt);
  if (!job.reason.empty()) line += ": " + job.reason;
  return line;
}

// Polls the jobs first .. first + count - 1 until every one is final,
// printing each change on stderr. One job is read with GetJob; an array's
// tasks with one listing per poll.
absl::StatusOr<std::vector<protocols::JobInfo>> WaitForJobs(Client& client, uint64_t first,
                                                            uint32_t count, std::ostream& err) {
  std::map<uint64_t, std::string> last;
  while (true) {
    std::vector<protocols::JobInfo> jobs;
    if (count <= 1) {
      SUBLET_ASSIGN_OR_RETURN(protocols::JobInfo job, client.GetJob(first));
      jobs.push_back(std::move(job));
    } else {
      SUBLET_ASSIGN_OR_RETURN(std::vector<protocols::JobInfo> listed,
                              client.ListJobs(/*all=*/true));
      for (auto& job : listed) {
        if (job.array_id == first) jobs.push_back(std::move(job));
      }
    }
    bool all_final = jobs.size() >= std::max<uint32_t>(count, 1);
    for (const protocols::JobInfo& job : jobs) {
      const std::string line = Progress(job);
      if (last[job.id] != line) err << line << std::endl;
      last[job.id] = line;
      all_final = all_final && IsFinalState(job.state);
    }
    if (all_final) return jobs;
    std::this_thread::sleep_for(kPollInterval);
  }
}

int RunSubmit(const SubmitFlags& flags, Session& session) {
  absl::StatusOr<protocols::JobSpec> spec = SpecWithFlags(flags);
  if (!spec.ok()) return session.Fail(spec.status());
  absl::StatusOr<Client*> client = session.client();
  if (!client.ok()) return session.Fail(client.status());
  absl::StatusOr<protocols::SubmitJobReply> reply = (*client)->SubmitJob(*spec);
  if (!reply.ok()) return session.Fail(reply.status());
  const uint64_t id = reply->job_id;
  const uint32_t tasks = reply->array_size;
  nlohmann::json submitted = {{"id", std::to_string(id)}, {"array", nullptr}};
  if (tasks > 0) {
    nlohmann::json ids = nlohmann::json::array();
    for (uint64_t t = id; t < id + tasks; ++t) ids.push_back(std::to_string(t));
    submitted["array"] = {{"size", tasks}, {"spec", spec->array}, {"job_ids", ids}};
  }
  // The id alone on stdout (scripts take it); what an array holds on stderr.
  if (!session.json()) {
    session.out() << id << std::endl;
    if (tasks > 0) {
      session.err() << fmt::format("array job {}: {}, jobs {}-{} (array: {})", id,
                                   Plural(tasks, "task"), id, id + tasks - 1, spec->array)
                    << std::endl;
    }
  }
  if (!flags.wait) return session.json() ? session.PrintJson(submitted) : 0;
  absl::StatusOr<std::vector<protocols::JobInfo>> jobs =
      WaitForJobs(**client, id, tasks, session.err());
  if (!jobs.ok()) return session.Fail(jobs.status());
  int rc = 0;
  nlohmann::json list = nlohmann::json::array();
  for (const protocols::JobInfo& job : *jobs) {
    list.push_back(JobToJson(job, /*detailed=*/false));
    if (job.state == "succeeded") continue;
    rc = 1;
    if (!session.json()) {
      session.err() << fmt::format("sublet: job {} {}{}", job.id, job.state,
                                   job.reason.empty() ? "" : ": " + job.reason)
                    << std::endl;
    }
  }
  if (session.json()) {
    if (tasks == 0) {
      session.PrintJson(list[0]);
    } else {
      submitted["jobs"] = list;
      session.PrintJson(submitted);
    }
  }
  return rc;
}

}  // namespace

void AddSubmitCommand(CLI::App& app, Command* chosen) {
  auto flags = std::make_shared<SubmitFlags>();
  CLI::App* cmd = app.add_subcommand(
      "submit",
      "Validate a job spec (YAML), submit it and print the new job's id (an array's: its "
      "first task's, which is the array's id). With --wait, follow the job (every task of an "
      "array) until it ends; exit 0 only if it (each of them) succeeded.");
  cmd->add_option("spec", flags->spec_path, "Job spec file (YAML)")->required();
  cmd->add_option("--array", flags->array,
                  "Submit a job array: one job per index, e.g. 0-99%8 (indices 0 to 99, at most "
                  "8 running at once), 1,3,5-7 or 0-99:10; each rank gets SUBLET_ARRAY_INDEX. "
                  "Overrides the spec's array");
  cmd->add_option("--depends-on", flags->depends_on,
                  "Start only after JOB[:WHEN] (WHEN: succeeded (default), failed or any; an "
                  "array's id waits for all its tasks); repeat it or give a comma list. Added "
                  "to the spec's depends_on")
      ->delimiter(',');
  cmd->add_flag("--wait", flags->wait,
                "Wait until the job is final, printing state changes on stderr");
  cmd->callback([chosen, flags] {
    *chosen = [flags](Session& session) { return RunSubmit(*flags, session); };
  });
}

}  // namespace sublet::client::cli

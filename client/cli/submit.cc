// `sublet submit SPEC.yaml [--wait]`.
#include <fmt/format.h>

#include <chrono>
#include <fstream>
#include <sstream>
#include <thread>

#include "client/cli/cli.h"
#include "protocols/job_spec.h"

namespace sublet::client::cli {
namespace {

constexpr std::chrono::milliseconds kPollInterval{300};

struct SubmitFlags {
  std::string spec_path;
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

std::string Progress(const protocols::JobInfo& job) {
  std::string line = fmt::format("job {}: {}", job.id, job.state);
  if (job.attempt > 0) line += fmt::format(" (attempt {})", job.attempt);
  if (!job.reason.empty()) line += ": " + job.reason;
  return line;
}

// Polls the job until it is final, printing each change on stderr.
absl::StatusOr<protocols::JobInfo> WaitForJob(Client& client, uint64_t id, std::ostream& err) {
  std::string last;
  while (true) {
    SUBLET_ASSIGN_OR_RETURN(protocols::JobInfo job, client.GetJob(id));
    const std::string line = Progress(job);
    if (line != last) err << line << std::endl;
    last = line;
    if (IsFinalState(job.state)) return job;
    std::this_thread::sleep_for(kPollInterval);
  }
}

int RunSubmit(const SubmitFlags& flags, Session& session) {
  absl::StatusOr<protocols::JobSpec> spec = LoadSpec(flags.spec_path);
  if (!spec.ok()) return session.Fail(spec.status());
  absl::StatusOr<Client*> client = session.client();
  if (!client.ok()) return session.Fail(client.status());
  absl::StatusOr<uint64_t> id = (*client)->Submit(*spec);
  if (!id.ok()) return session.Fail(id.status());
  if (!flags.wait) {
    if (session.json()) return session.PrintJson({{"id", std::to_string(*id)}});
    session.out() << *id << std::endl;
    return 0;
  }
  if (!session.json()) session.out() << *id << std::endl;
  absl::StatusOr<protocols::JobInfo> job = WaitForJob(**client, *id, session.err());
  if (!job.ok()) return session.Fail(job.status());
  if (session.json()) session.PrintJson(JobToJson(*job, /*detailed=*/false));
  if (job->state == "succeeded") return 0;
  if (!session.json()) {
    session.err() << fmt::format("sublet: job {} {}{}", job->id, job->state,
                                 job->reason.empty() ? "" : ": " + job->reason)
                  << std::endl;
  }
  return 1;
}

}  // namespace

void AddSubmitCommand(CLI::App& app, Command* chosen) {
  auto flags = std::make_shared<SubmitFlags>();
  CLI::App* cmd = app.add_subcommand(
      "submit",
      "Validate a job spec (YAML), submit it and print the new job's id. With --wait, "
      "follow the job until it ends; exit 0 only if it succeeded.");
  cmd->add_option("spec", flags->spec_path, "Job spec file (YAML)")->required();
  cmd->add_flag("--wait", flags->wait,
                "Wait until the job is final, printing state changes on stderr");
  cmd->callback([chosen, flags] {
    *chosen = [flags](Session& session) { return RunSubmit(*flags, session); };
  });
}

}  // namespace sublet::client::cli

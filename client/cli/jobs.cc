// `sublet jobs`, `sublet show JOB`, `sublet cancel JOB`.
#include <memory>

#include "absl/time/clock.h"
#include "client/cli/cli.h"
#include "protocols/ids.h"

namespace sublet::client::cli {
namespace {

int RunJobs(bool all, Session& session) {
  absl::StatusOr<Client*> client = session.client();
  if (!client.ok()) return session.Fail(client.status());
  absl::StatusOr<std::vector<protocols::JobInfo>> jobs = (*client)->ListJobs(all);
  if (!jobs.ok()) return session.Fail(jobs.status());
  if (session.json()) {
    nlohmann::json list = nlohmann::json::array();
    for (const auto& job : *jobs) list.push_back(JobToJson(job, /*detailed=*/false));
    return session.PrintJson({{"jobs", list}, {"tenants", TenantTotalsToJson(*jobs)}});
  }
  session.out() << RenderJobsTable(*jobs, absl::Now());
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

int RunCancel(const std::string& arg, Session& session) {
  absl::StatusOr<uint64_t> id = protocols::ParseId("job", arg);
  if (!id.ok()) return session.Fail(id.status());
  absl::StatusOr<Client*> client = session.client();
  if (!client.ok()) return session.Fail(client.status());
  absl::StatusOr<protocols::JobInfo> job = (*client)->Cancel(*id);
  if (!job.ok()) return session.Fail(job.status());
  if (session.json()) return session.PrintJson(JobToJson(*job, /*detailed=*/false));
  session.out() << "job " << job->id << ": " << job->state << std::endl;
  return 0;
}

}  // namespace

void AddJobCommands(CLI::App& app, Command* chosen) {
  auto all = std::make_shared<bool>(false);
  CLI::App* jobs = app.add_subcommand(
      "jobs",
      "List your jobs: id, name, tenant, state, nodes, restarts, preemptions, age, "
      "reason. Admins see everyone's with --all.");
  jobs->add_flag("--all", *all, "Every tenant's jobs (admin token only)");
  jobs->callback(
      [chosen, all] { *chosen = [all](Session& session) { return RunJobs(*all, session); }; });

  auto show_id = std::make_shared<std::string>();
  CLI::App* show =
      app.add_subcommand("show",
                         "Show one job: state and reason, spec summary, placement of each rank, "
                         "attempts, restarts, preemptions, last checkpoint and its event history.");
  show->add_option("job", *show_id, "Job id")->required();
  show->callback([chosen, show_id] {
    *chosen = [show_id](Session& session) { return RunShow(*show_id, session); };
  });

  auto cancel_id = std::make_shared<std::string>();
  CLI::App* cancel =
      app.add_subcommand("cancel",
                         "Cancel a job (its ranks get SIGTERM, then SIGKILL after a grace period) "
                         "and print its new state.");
  cancel->add_option("job", *cancel_id, "Job id")->required();
  cancel->callback([chosen, cancel_id] {
    *chosen = [cancel_id](Session& session) { return RunCancel(*cancel_id, session); };
  });
}

}  // namespace sublet::client::cli

// `sublet ckpt ls DIR` and `sublet ckpt verify DIR/step-N`: read checkpoint
// directories directly (no coordinator). Exit 0 when valid; otherwise the
// message names the bad file and the offset of the bad bytes.
#include <fmt/format.h>

#include "checkpoint/checkpoint.h"
#include "client/cli/cli.h"

namespace sublet::client::cli {
namespace {

namespace ckpt = sublet::checkpoint;

std::string HumanBytes(uint64_t bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(bytes);
  int u = 0;
  while (v >= 1024 && u < 4) {
    v /= 1024;
    ++u;
  }
  return u == 0 ? fmt::format("{} B", bytes) : fmt::format("{:.1f} {}", v, units[u]);
}

nlohmann::json ManifestSummary(const ckpt::Manifest& m) {
  return {{"dp", m.dp},
          {"tp", m.tp},
          {"tensors", m.tensors.size()},
          {"files", m.files.size()},
          {"bytes", m.TotalBytes()},
          {"data_position", m.cursor.data_position}};
}

int RunLs(Session& session, const std::string& dir) {
  ckpt::PosixFileSystem fs;
  absl::StatusOr<std::vector<ckpt::CheckpointInfo>> list = ckpt::ListCheckpoints(fs, dir);
  if (!list.ok()) return session.Fail(list.status());
  if (session.json()) {
    nlohmann::json items = nlohmann::json::array();
    for (const ckpt::CheckpointInfo& info : *list) {
      nlohmann::json item = {{"step", info.step}, {"path", info.path},
                             {"state", ckpt::StateName(info.state)}};
      if (info.manifest) item.update(ManifestSummary(*info.manifest));
      if (!info.problem.empty()) item["problem"] = info.problem;
      items.push_back(std::move(item));
    }
    return session.PrintJson({{"dir", dir}, {"checkpoints", items}});
  }
  session.out() << fmt::format("{:<10} {:<10} {:>4} {:>4} {:>8} {:>10} {:>14}  {}\n", "STEP", "STATE",
                               "DP", "TP", "TENSORS", "SIZE", "DATA_POSITION", "PROBLEM");
  for (const ckpt::CheckpointInfo& info : *list) {
    if (info.manifest) {
      const ckpt::Manifest& m = *info.manifest;
      session.out() << fmt::format("{:<10} {:<10} {:>4} {:>4} {:>8} {:>10} {:>14}\n", info.step,
                                   ckpt::StateName(info.state), m.dp, m.tp, m.tensors.size(),
                                   HumanBytes(m.TotalBytes()), m.cursor.data_position);
    } else {
      session.out() << fmt::format("{:<10} {:<10} {:>4} {:>4} {:>8} {:>10} {:>14}  {}\n", info.step,
                                   ckpt::StateName(info.state), "-", "-", "-", "-", "-", info.problem);
    }
  }
  return 0;
}

// What a user types for a step: DIR/step-00000400 (the directory's name),
// DIR/step-400 or DIR/400 (the step `ckpt ls` prints). A path that exists is
// taken as it is.
std::string ResolveStepDir(ckpt::FileSystem& fs, const std::string& path) {
  if (fs.Exists(path)) return path;
  std::string trimmed = path;
  while (trimmed.size() > 1 && trimmed.back() == '/') trimmed.pop_back();
  const size_t slash = trimmed.rfind('/');
  const std::string parent = slash == std::string::npos ? "." : trimmed.substr(0, slash);
  std::string name = slash == std::string::npos ? trimmed : trimmed.substr(slash + 1);
  if (name.starts_with("step-")) name = name.substr(5);
  if (name.empty() || name.size() > 18 || name.find_first_not_of("0123456789") != std::string::npos) {
    return path;
  }
  return parent + "/" + ckpt::StepDirName(std::stoll(name));
}

int RunVerify(Session& session, const std::string& given) {
  ckpt::PosixFileSystem fs;
  const std::string step_dir = ResolveStepDir(fs, given);
  absl::StatusOr<ckpt::Manifest> m = ckpt::VerifyCheckpoint(fs, step_dir);
  if (!m.ok()) return session.Fail(m.status());
  if (session.json()) {
    nlohmann::json doc = {{"path", step_dir}, {"valid", true}, {"step", m->cursor.step}};
    doc.update(ManifestSummary(*m));
    return session.PrintJson(doc);
  }
  session.out() << fmt::format("{}: valid: step {}, dp {} x tp {}, {} tensors, {} files, {} verified\n",
                               step_dir, m->cursor.step, m->dp, m->tp, m->tensors.size(),
                               m->files.size(), HumanBytes(m->TotalBytes()));
  return 0;
}

}  // namespace

void AddCkptCommands(CLI::App& app, Command* chosen) {
  CLI::App* group = app.add_subcommand(
      "ckpt", "Inspect and verify checkpoint directories (read directly, no coordinator).");
  group->require_subcommand(1);

  auto dir = std::make_shared<std::string>();
  CLI::App* ls = group->add_subcommand(
      "ls",
      "List the step directories under DIR, newest first: committed, partial (no COMMIT: the "
      "save did not finish) or corrupt, with topology, size and the problem found. Checks "
      "COMMIT, MANIFEST and file sizes; `verify` reads the data.");
  ls->add_option("DIR", *dir, "checkpoint directory")->required();
  ls->callback([chosen, dir] { *chosen = [dir](Session& s) { return RunLs(s, *dir); }; });

  auto step_dir = std::make_shared<std::string>();
  CLI::App* verify = group->add_subcommand(
      "verify",
      "Read every byte of DIR/step-N and check COMMIT, MANIFEST and every block checksum. "
      "Exit 0 when valid; otherwise exit non-zero naming the bad file and byte offset.");
  verify->add_option("STEP_DIR", *step_dir, "a step directory: DIR/step-00000400, DIR/step-400 or DIR/400")->required();
  verify->callback(
      [chosen, step_dir] { *chosen = [step_dir](Session& s) { return RunVerify(s, *step_dir); }; });
}

}  // namespace sublet::client::cli

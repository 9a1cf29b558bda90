#include "protocols/job_spec.h"

#include <signal.h>

#include <fmt/format.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>

namespace sublet::protocols {
namespace {

constexpr char kDesignExample[] = R"(
name: gpt-tiny
resources:
  nodes: 2              # gang size: all or nothing
  gpus_per_node: 2      # one rank per GPU
command: [sublet-train, --model, tiny, --steps, "400"]
env: {SUBLET_LOG_LEVEL: info}
parallelism: {tensor: 2}
checkpoint: {every_steps: 50, keep: 3}
priority: normal                  # low | normal | high
max_restarts: 3
elastic: {min_nodes: 1}
time_limit: 2h
)";

constexpr char kMinimal[] = "name: tiny\nresources: {nodes: 1, gpus_per_node: 2}\ncommand: [run]\n";

class JobSpecTest : public ::testing::Test {
 protected:
  // kMinimal (1 node x 2 GPUs) with `extra` top-level fields appended.
  static std::string WithMinimal(const std::string& extra) { return std::string(kMinimal) + extra; }

  // Expects `yaml` to be refused with InvalidArgument whose message starts
  // with `prefix` (the field path).
  static void ExpectRejected(const std::string& yaml, const std::string& prefix,
                             const SpecLimits& limits = {}) {
    absl::StatusOr<JobSpec> spec = ParseJobSpecYaml(yaml, limits);
    ASSERT_FALSE(spec.ok()) << "accepted:\n" << yaml;
    EXPECT_EQ(spec.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(std::string(spec.status().message()).substr(0, prefix.size()), prefix)
        << spec.status();
  }

  static std::string Minimal(const std::string& resources, const std::string& command = "[run]") {
    return "name: tiny\nresources: " + resources + "\ncommand: " + command + "\n";
  }
};

TEST_F(JobSpecTest, ParsesTheDesignExample) {
  absl::StatusOr<JobSpec> spec = ParseJobSpecYaml(kDesignExample);
  ASSERT_TRUE(spec.ok()) << spec.status();
  JobSpec expected;
  expected.name = "gpt-tiny";
  expected.nodes = 2;
  expected.gpus_per_node = 2;
  expected.command = {"sublet-train", "--model", "tiny", "--steps", "400"};
  expected.env = {{"SUBLET_LOG_LEVEL", "info"}};
  expected.tensor_parallel = 2;
  expected.checkpoint_every_steps = 50;
  expected.checkpoint_keep = 3;
  expected.priority = Priority::kNormal;
  expected.max_restarts = 3;
  expected.elastic_min_nodes = 1;
  expected.time_limit = absl::Hours(2);
  EXPECT_EQ(*spec, expected);
  EXPECT_EQ(spec->WorldSize(), 4u);
}

TEST_F(JobSpecTest, MinimalSpecGetsDefaults) {
  absl::StatusOr<JobSpec> spec = ParseJobSpecYaml(kMinimal);
  ASSERT_TRUE(spec.ok()) << spec.status();
  JobSpec expected;
  expected.name = "tiny";
  expected.gpus_per_node = 2;
  expected.command = {"run"};
  EXPECT_EQ(*spec, expected);
}

TEST_F(JobSpecTest, YamlRendersBackToTheSameSpec) {
  absl::StatusOr<JobSpec> spec = ParseJobSpecYaml(kDesignExample);
  ASSERT_TRUE(spec.ok()) << spec.status();
  spec->command.push_back("--flag=a, b: [c]");
  spec->command.push_back("null");
  spec->env["EMPTY"] = "";
  spec->time_limit = absl::Minutes(90);
  absl::StatusOr<JobSpec> again = ParseJobSpecYaml(JobSpecToYaml(*spec));
  ASSERT_TRUE(again.ok()) << again.status() << "\n" << JobSpecToYaml(*spec);
  EXPECT_EQ(*again, *spec);
}

TEST_F(JobSpecTest, MinimalSpecRendersBackToItself) {
  absl::StatusOr<JobSpec> spec = ParseJobSpecYaml(kMinimal);
  ASSERT_TRUE(spec.ok()) << spec.status();
  absl::StatusOr<JobSpec> again = ParseJobSpecYaml(JobSpecToYaml(*spec));
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(*again, *spec);
}

TEST_F(JobSpecTest, PriorityNamesMatchTheSpec) {
  EXPECT_EQ(PriorityName(Priority::kLow), "low");
  EXPECT_EQ(PriorityName(Priority::kNormal), "normal");
  EXPECT_EQ(PriorityName(Priority::kHigh), "high");
}

// ---- errors ------------------------------------------------------------------

TEST_F(JobSpecTest, RejectsUnknownTopLevelField) {
  ExpectRejected(std::string(kMinimal) + "gpus: 4\n", "gpus: unknown field");
}

TEST_F(JobSpecTest, RejectsUnknownNestedField) {
  ExpectRejected(Minimal("{nodes: 1, gpus_per_node: 1, gpus: 2}"), "resources.gpus: unknown field");
}

TEST_F(JobSpecTest, RejectsDuplicateField) {
  ExpectRejected(std::string(kMinimal) + "name: again\n", "name: duplicate field");
}

TEST_F(JobSpecTest, RejectsMissingRequiredFields) {
  ExpectRejected("name: tiny\ncommand: [run]\n", "resources: required field is missing");
  ExpectRejected(Minimal("{nodes: 1}"), "resources.gpus_per_node: required field is missing");
  ExpectRejected("resources: {nodes: 1, gpus_per_node: 1}\ncommand: [run]\n",
                 "name: required field is missing");
}

TEST_F(JobSpecTest, RejectsStringWhereIntegerExpected) {
  ExpectRejected(Minimal("{nodes: two, gpus_per_node: 1}"),
                 "resources.nodes: expected a non-negative integer");
  ExpectRejected(Minimal("{nodes: \"2\", gpus_per_node: 1}"),
                 "resources.nodes: expected a non-negative integer");
}

TEST_F(JobSpecTest, RejectsFloatsNegativesAndOverflow) {
  ExpectRejected(Minimal("{nodes: 1.5, gpus_per_node: 1}"),
                 "resources.nodes: expected a non-negative integer");
  ExpectRejected(Minimal("{nodes: -1, gpus_per_node: 1}"), "resources.nodes: must not be negative");
  ExpectRejected(Minimal("{nodes: 4294967296, gpus_per_node: 1}"),
                 "resources.nodes: 4294967296 is out of range");
}

TEST_F(JobSpecTest, RejectsZeroNodes) {
  ExpectRejected(Minimal("{nodes: 0, gpus_per_node: 1}"), "resources.nodes: must be at least 1");
}

TEST_F(JobSpecTest, RejectsSizesOverTheLimits) {
  ExpectRejected(Minimal("{nodes: 5000, gpus_per_node: 1}"),
                 "resources.nodes: 5000 exceeds the limit");
  ExpectRejected(Minimal("{nodes: 1, gpus_per_node: 65}"),
                 "resources.gpus_per_node: 65 exceeds the limit");
}

TEST_F(JobSpecTest, RejectsMapWhereListExpected) {
  ExpectRejected(Minimal("{nodes: 1, gpus_per_node: 1}", "{run: now}"), "command: expected a list");
}

TEST_F(JobSpecTest, RejectsListWhereMappingExpected) {
  ExpectRejected(Minimal("[1, 2]"), "resources: expected a mapping");
}

TEST_F(JobSpecTest, RejectsEmptyCommand) {
  ExpectRejected(Minimal("{nodes: 1, gpus_per_node: 1}", "[]"), "command: must not be empty");
}

TEST_F(JobSpecTest, RejectsNonStringCommandArgument) {
  ExpectRejected(Minimal("{nodes: 1, gpus_per_node: 1}", "[run, [nested]]"),
                 "command[1]: expected a string");
}

TEST_F(JobSpecTest, RejectsTensorThatDoesNotDivideGpusPerNode) {
  ExpectRejected(WithMinimal("parallelism: {tensor: 3}\n"),
                 "parallelism.tensor: 3 does not divide gpus_per_node 2");
}

TEST_F(JobSpecTest, RejectsUnknownPriority) {
  ExpectRejected(WithMinimal("priority: urgent\n"),
                 "priority: must be one of low, normal, high, got \"urgent\"");
}

TEST_F(JobSpecTest, RejectsMalformedDuration) {
  ExpectRejected(WithMinimal("time_limit: 2 hours\n"),
                 "time_limit: malformed duration \"2 hours\"");
}

TEST_F(JobSpecTest, ParsesTheElasticStart) {
  auto spec = ParseJobSpecYaml(
      "name: e\nresources: {nodes: 2, gpus_per_node: 1}\ncommand: [x]\n"
      "elastic: {min_nodes: 1, start: any}\n");
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_TRUE(spec->elastic_start_any);
  EXPECT_EQ(*ParseJobSpecYaml(JobSpecToYaml(*spec)), *spec);
  EXPECT_FALSE(ParseJobSpecYaml("name: e\nresources: {nodes: 2, gpus_per_node: 1}\n"
                                "command: [x]\nelastic: {min_nodes: 1, start: full}\n")
                   ->elastic_start_any);
  ExpectRejected("name: e\nresources: {nodes: 2, gpus_per_node: 1}\ncommand: [x]\n"
                 "elastic: {min_nodes: 1, start: soon}\n",
                 "elastic.start: 'soon' is not full or any");
  ExpectRejected("name: e\nresources: {nodes: 2, gpus_per_node: 1}\ncommand: [x]\n"
                 "elastic: {start: any}\n",
                 "elastic.start: any needs elastic.min_nodes");
}

TEST_F(JobSpecTest, ParsesProgressTimeout) {
  auto spec = ParseJobSpecYaml(WithMinimal("progress_timeout: 10m\n"));
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_EQ(spec->progress_timeout, absl::Minutes(10));
  EXPECT_EQ(*ParseJobSpecYaml(JobSpecToYaml(*spec)), *spec);
  ExpectRejected(WithMinimal("progress_timeout: never\n"),
                 "progress_timeout: malformed duration \"never\"");
}

TEST_F(JobSpecTest, ParsesThePreemptionSignal) {
  auto spec = ParseJobSpecYaml(WithMinimal("preemption: {signal: SIGTERM}\n"));
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_EQ(spec->preemption_signal, "SIGTERM");
  EXPECT_EQ(PreemptionSignalNumber(spec->preemption_signal), SIGTERM);
  EXPECT_EQ(*ParseJobSpecYaml(JobSpecToYaml(*spec)), *spec);
  EXPECT_EQ(PreemptionSignalNumber(""), SIGUSR1);
  EXPECT_EQ(ParseJobSpecYaml(WithMinimal(""))->preemption_signal, "");
  ExpectRejected(WithMinimal("preemption: {signal: SIGKILL}\n"),
                 "preemption.signal: 'SIGKILL' is not one of SIGUSR1, SIGUSR2, SIGTERM, SIGINT, "
                 "SIGHUP");
  ExpectRejected(WithMinimal("preemption: {grace: 2m}\n"), "preemption.grace: unknown field");
  ExpectRejected(WithMinimal("preemption: SIGTERM\n"), "preemption: expected a mapping");
}

TEST_F(JobSpecTest, ParsesTheTorchrunLauncherAndRefusesAnyOther) {
  constexpr char kTorchrun[] =
      "name: t\nresources: {nodes: 2, gpus_per_node: 2}\ncommand: [python3, train.py]\n"
      "launcher: torchrun\n";
  auto spec = ParseJobSpecYaml(kTorchrun);
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_TRUE(spec->Torchrun());
  EXPECT_EQ(*ParseJobSpecYaml(JobSpecToYaml(*spec)), *spec);
  EXPECT_FALSE(ParseJobSpecYaml(WithMinimal(""))->Torchrun());
  ExpectRejected(WithMinimal("launcher: mpirun\n"),
                 "launcher: 'mpirun' is not torchrun (leave it out for one process per GPU)");
  ExpectRejected(WithMinimal("launcher: [torchrun]\n"), "launcher");
  // torchrun's own command line comes first; the spec names what it runs.
  ExpectRejected(WithMinimal("launcher: torchrun\n"),
                 "command: launcher torchrun runs [PYTHON, SCRIPT, ARGS...]");
}

TEST_F(JobSpecTest, RejectsInvalidUtf8InCommandAndEnv) {
  JobSpec spec = *ParseJobSpecYaml(WithMinimal(""));
  spec.command.push_back("caf\xc3");  // truncated two-byte sequence
  EXPECT_THAT(std::string(ValidateJobSpec(spec).message()), ::testing::HasSubstr("command[1]: must be valid UTF-8"));
  spec.command.back() = "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x9a\x80";  // café € 🚀
  EXPECT_TRUE(ValidateJobSpec(spec).ok());
  spec.env["X"] = "\xed\xa0\x80";  // a UTF-16 surrogate
  EXPECT_THAT(std::string(ValidateJobSpec(spec).message()), ::testing::HasSubstr("env.X: must be valid UTF-8"));
}

TEST_F(JobSpecTest, RejectsElasticMinimumAboveNodes) {
  ExpectRejected(WithMinimal("elastic: {min_nodes: 2}\n"),
                 "elastic.min_nodes: 2 exceeds resources.nodes 1");
}

TEST_F(JobSpecTest, RejectsKeepingNoCheckpoints) {
  ExpectRejected(WithMinimal("checkpoint: {keep: 0}\n"), "checkpoint.keep: must be at least 1");
}

TEST_F(JobSpecTest, RejectsReservedEnvKey) {
  ExpectRejected(WithMinimal("env: {SUBLET_RANK: \"3\"}\n"), "env.SUBLET_RANK: reserved");
  ExpectRejected(WithMinimal("env: {CUDA_VISIBLE_DEVICES: \"0\"}\n"),
                 "env.CUDA_VISIBLE_DEVICES: reserved");
}

TEST_F(JobSpecTest, RejectsInvalidEnvName) {
  ExpectRejected(WithMinimal("env: {1FOO: x}\n"), "env.1FOO: not a valid variable name");
  ExpectRejected(WithMinimal("env: {FOO: [x]}\n"), "env.FOO: expected a string");
}

TEST_F(JobSpecTest, RejectsBadName) {
  ExpectRejected("name: \"a b\"\nresources: {nodes: 1, gpus_per_node: 1}\ncommand: [run]\n",
                 "name: may hold only");
  ExpectRejected("name: " + std::string(129, 'a') +
                     "\nresources: {nodes: 1, gpus_per_node: 1}\ncommand: [run]\n",
                 "name: longer than 128 bytes");
}

TEST_F(JobSpecTest, RejectsOversizeSpecBeforeParsing) {
  SpecLimits limits;
  limits.max_spec_bytes = 16;
  ExpectRejected(kMinimal, "spec: ", limits);
}

TEST_F(JobSpecTest, RejectsYamlSyntaxErrorWithPosition) {
  ExpectRejected("name: [unclosed\n", "spec: invalid YAML at line");
}

TEST_F(JobSpecTest, RejectsDocumentsThatAreNotOneMapping) {
  ExpectRejected("", "spec: empty document");
  ExpectRejected("- a\n- b\n", "spec: expected a mapping of fields at line 1, column 1");
  ExpectRejected(std::string(kMinimal) + "---\n" + kMinimal, "spec: expected one YAML document");
}

TEST_F(JobSpecTest, RejectsDeeplyNestedYaml) {
  ExpectRejected("name: " + std::string(5000, '[') + "\n",
                 "spec: lists and mappings nested more than 16 deep at line 1");
  std::string nested = "name: x\nresources: {nodes: 1, gpus_per_node: 1}\ncommand: [run]\nenv:\n";
  for (int i = 1; i < 20; ++i) nested += std::string(2 * i, ' ') + "a:\n";
  ExpectRejected(nested, "spec: lists and mappings nested more than 16 deep at line");
}

// yaml-cpp 0.7 makes no progress on a ',' where no value can start (outside
// [] or {}); LoadAll collected empty documents until memory ran out (the
// fuzzer's OOM, jbeder/yaml-cpp#1040).
TEST_F(JobSpecTest, RejectsCommaOutsideFlowCollections) {
  ExpectRejected(",", "spec: invalid YAML at line 1, column 1: ',' outside [...] or {...}");
  ExpectRejected(",,", "spec: invalid YAML at line 1, column 1: ',' outside [...] or {...}");
  ExpectRejected("- a\n,\n", "spec: invalid YAML at line 2, column 1: ',' outside [...] or {...}");
  ExpectRejected("[a],", "spec: invalid YAML at line 1, column 4: ',' outside [...] or {...}");
  ExpectRejected(std::string(kMinimal) + "---\n,\n", "spec: invalid YAML at line 5, column 1");
  ExpectRejected(std::string(kMinimal) + ",\n", "spec: invalid YAML at line 4, column 1");
}

TEST_F(JobSpecTest, RejectsTooManyYamlNodes) {
  std::string many = "[run";
  for (int i = 0; i < 5000; ++i) many += ", x";
  ExpectRejected(Minimal("{nodes: 1, gpus_per_node: 1}", many + "]"),
                 "spec: more than 4096 YAML nodes (at line 3");
  // Empty documents are nodes too.
  std::string docs;
  for (int i = 0; i < 5000; ++i) docs += "---\n";
  ExpectRejected(docs, "spec: more than 4096 YAML nodes");
  SpecLimits limits;
  limits.max_yaml_nodes = 8;
  ExpectRejected(kMinimal, "spec: more than 8 YAML nodes", limits);
}

// Anchors and aliases are allowed: an alias shares the anchored node, so a
// "billion laughs" text is a small graph that is never expanded, and the
// readers look at a bounded number of nodes.
TEST_F(JobSpecTest, AliasesAreNeverExpanded) {
  std::string laughs =
      "name: &n x\nresources: {nodes: 1, gpus_per_node: 1}\nl0: &l0 [a, a, a, a, a, a, a, a]\n";
  for (int i = 1; i < 30; ++i) {
    laughs += fmt::format("l{0}: &l{0} [*l{1}, *l{1}, *l{1}, *l{1}, *l{1}, *l{1}, *l{1}, *l{1}]\n",
                          i, i - 1);
  }
  ExpectRejected(laughs + "command: *l29\n", "l0: unknown field");
  ExpectRejected("name: &n x\nresources: {nodes: 1, gpus_per_node: 1}\ncommand: *l\n",
                 "spec: invalid YAML at line 3");
  absl::StatusOr<JobSpec> spec = ParseJobSpecYaml(
      "name: &n tiny\nresources: {nodes: 1, gpus_per_node: 1}\ncommand: [*n, &a b, *a]\n");
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_EQ(spec->command, (std::vector<std::string>{"tiny", "b", "b"}));
}

// '&', '*', '!' and ',' are ordinary characters inside quoted scalars and
// inside (not at the start of) plain ones.
TEST_F(JobSpecTest, AcceptsIndicatorCharactersInsideScalars) {
  absl::StatusOr<JobSpec> spec = ParseJobSpecYaml(R"(name: tiny
resources: {nodes: 1, gpus_per_node: 1}
command:
  - sh
  - a&b
  - x*y
  - hi!
  - a, b
  - "*glob"
  - '&amp'
  - "!neg"
  - ","
  - '[x, {y}]'
env:
  AMP: a&b
  STAR: "*"
  BANG: '!'
  COMMA: x,y
)");
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_EQ(spec->command, (std::vector<std::string>{"sh", "a&b", "x*y", "hi!", "a, b", "*glob",
                                                     "&amp", "!neg", ",", "[x, {y}]"}));
  EXPECT_EQ(spec->env, (std::map<std::string, std::string>{
                           {"AMP", "a&b"}, {"STAR", "*"}, {"BANG", "!"}, {"COMMA", "x,y"}}));
  spec = ParseJobSpecYaml(
      "name: tiny\nresources: {nodes: 1, gpus_per_node: 1}\n"
      "command: [\"a,b\", a&b, x*y, 'p!', \"&\", '*']\nenv: {A: \"x,y\", B: a&b}\n");
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_EQ(spec->command, (std::vector<std::string>{"a,b", "a&b", "x*y", "p!", "&", "*"}));
  EXPECT_EQ(spec->env, (std::map<std::string, std::string>{{"A", "x,y"}, {"B", "a&b"}}));
}

// The biggest spec the field limits allow stays under the YAML node limit.
TEST_F(JobSpecTest, AcceptsTheLargestSpecTheLimitsAllow) {
  std::string yaml =
      "name: big\nresources: {nodes: 2, gpus_per_node: 2}\nparallelism: {tensor: 2}\n"
      "checkpoint: {every_steps: 50, keep: 3}\npriority: high\nmax_restarts: 3\n"
      "elastic: {min_nodes: 1}\ntime_limit: 2h\nprogress_timeout: 5m\ncommand:\n";
  for (int i = 0; i < 256; ++i) yaml += fmt::format("  - arg{}\n", i);
  yaml += "env:\n";
  for (int i = 0; i < 256; ++i) yaml += fmt::format("  V{}: v\n", i);
  absl::StatusOr<JobSpec> spec = ParseJobSpecYaml(yaml);
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_EQ(spec->command.size(), 256u);
  EXPECT_EQ(spec->env.size(), 256u);
}

// ---- ValidateJobSpec on decoded specs ------------------------------------------

TEST_F(JobSpecTest, ValidateRejectsWhatTheParserWould) {
  absl::StatusOr<JobSpec> spec = ParseJobSpecYaml(kDesignExample);
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_TRUE(ValidateJobSpec(*spec).ok());
  spec->tensor_parallel = 0;
  EXPECT_EQ(ValidateJobSpec(*spec).message(), "parallelism.tensor: must be at least 1");
  spec->tensor_parallel = 1;
  spec->priority = static_cast<Priority>(9);
  EXPECT_TRUE(absl::IsInvalidArgument(ValidateJobSpec(*spec)));
}

TEST_F(JobSpecTest, ParsesDependenciesWithSucceededAsTheDefault) {
  absl::StatusOr<JobSpec> spec = ParseJobSpecYaml(WithMinimal(
      "depends_on:\n  - {job: 12, when: failed}\n  - job: 13\n  - {job: 18446744073709551615, "
      "when: any}\n"));
  ASSERT_TRUE(spec.ok()) << spec.status();
  const std::vector<Dependency> want = {{12, DependencyWhen::kFailed},
                                        {13, DependencyWhen::kSucceeded},
                                        {UINT64_MAX, DependencyWhen::kAny}};
  EXPECT_EQ(spec->depends_on, want);
  absl::StatusOr<JobSpec> again = ParseJobSpecYaml(JobSpecToYaml(*spec));
  ASSERT_TRUE(again.ok()) << again.status() << "\n" << JobSpecToYaml(*spec);
  EXPECT_EQ(*again, *spec);
}

TEST_F(JobSpecTest, RejectsMalformedDependenciesNamingTheEntry) {
  ExpectRejected(WithMinimal("depends_on: 12\n"), "depends_on: expected a list");
  ExpectRejected(WithMinimal("depends_on: [{when: any}]\n"),
                 "depends_on[0].job: required field is missing");
  ExpectRejected(WithMinimal("depends_on: [{job: 0}]\n"), "depends_on[0].job: 0 is not a job id");
  ExpectRejected(WithMinimal("depends_on: [{job: -1}]\n"), "depends_on[0].job: expected a job id");
  ExpectRejected(WithMinimal("depends_on: [{job: \"12\"}]\n"),
                 "depends_on[0].job: expected a job id");
  ExpectRejected(WithMinimal("depends_on: [{job: 18446744073709551616}]\n"),
                 "depends_on[0].job: 18446744073709551616 is not a job id");
  ExpectRejected(WithMinimal("depends_on: [{job: 1, when: afterok}]\n"),
                 "depends_on[0].when: must be one of succeeded, failed, any");
  ExpectRejected(WithMinimal("depends_on: [{job: 1, after: 2}]\n"),
                 "depends_on[0].after: unknown field");
  ExpectRejected(WithMinimal("depends_on: [{job: 4}, {job: 4, when: any}]\n"),
                 "depends_on[1].job: job 4 is already depends_on[0]");
  std::string many = "depends_on:\n";
  for (int i = 1; i <= 65; ++i) many += fmt::format("  - {{job: {}}}\n", i);
  ExpectRejected(WithMinimal(many), "depends_on: 65 entries exceed the limit of 64");
}

TEST_F(JobSpecTest, ParsesArraysAsSlurmWritesThem) {
  struct Case {
    const char* text;
    std::vector<uint32_t> indices;
    uint32_t max_running;
  };
  const Case cases[] = {
      {"0-3", {0, 1, 2, 3}, 0},
      {"0-99%8", {}, 8},
      {"7", {7}, 0},
      {"1,3,5-7", {1, 3, 5, 6, 7}, 0},
      {"0-10:5", {0, 5, 10}, 0},
      {"5,1-2,5", {1, 2, 5}, 0},
      {"0-999999:999999%1", {0, 999999}, 1},
  };
  for (const Case& c : cases) {
    absl::StatusOr<ArraySpec> array = ParseArraySpec(c.text, {});
    ASSERT_TRUE(array.ok()) << c.text << ": " << array.status();
    if (!c.indices.empty()) {
      EXPECT_EQ(array->indices, c.indices) << c.text;
    }
    EXPECT_EQ(array->max_running, c.max_running) << c.text;
  }
  EXPECT_EQ(ParseArraySpec("0-99%8", {})->indices.size(), 100u);
  absl::StatusOr<JobSpec> spec = ParseJobSpecYaml(WithMinimal("array: 0-99%8\n"));
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_EQ(spec->array, "0-99%8");
  absl::StatusOr<JobSpec> again = ParseJobSpecYaml(JobSpecToYaml(*spec));
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->array, "0-99%8");
  EXPECT_TRUE(ParseJobSpecYaml(WithMinimal("array: 5\n")).ok()) << "a number is a one-task array";
}

TEST_F(JobSpecTest, RejectsMalformedOrHugeArraysBeforeStoringAnIndex) {
  for (const char* bad : {"", "%8", "0-99%", "0-99%0", "0-99%x", "a", "1-", "-1", "5-1", "1,,2",
                          "1,", "0-10:0", "0-10:x", "1000000", "0-4294967296", "0-1000",
                          "0-999999", "0-1,2-1000", "0x10", " 1", "1-2-3"}) {
    absl::StatusOr<ArraySpec> array = ParseArraySpec(bad, {});
    ASSERT_FALSE(array.ok()) << "accepted '" << bad << "'";
    EXPECT_EQ(std::string(array.status().message()).substr(0, 7), "array: ") << array.status();
  }
  EXPECT_THAT(std::string(ParseArraySpec("0-1000", {}).status().message()),
              ::testing::HasSubstr("more than 1000 tasks"));
  ExpectRejected(WithMinimal("array: 5-1\n"), "array: '5-1': the range ends before it starts");
  ExpectRejected(WithMinimal("array: [1, 2]\n"), "array: expected a string");
  ExpectRejected(WithMinimal("array: \"" + std::string(2000, '1') + "\"\n"),
                 "array: longer than 1024 bytes");
}

TEST_F(JobSpecTest, ASpecMayNotSetTheArrayVariables) {
  for (const char* name : {"SUBLET_ARRAY_INDEX", "SUBLET_ARRAY_JOB_ID", "SUBLET_ARRAY_TASK_COUNT"}) {
    ExpectRejected(WithMinimal(fmt::format("env: {{{}: \"3\"}}\n", name)),
                   fmt::format("env.{}: reserved", name));
  }
}

}  // namespace
}  // namespace sublet::protocols

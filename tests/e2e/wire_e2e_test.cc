// End to end: wire security (issue 14) with real daemons.
//   - A packet capture of a scripted session (a worker registering, submit,
//     logs, reclaim) holds none of the secrets that cross the wire: no token,
//     no spec, no argument, no log line, no job secret.
//   - A process that is not a rank of the job attempt cannot read the job's
//     rendezvous store nor join its TCP mesh, and what it tries does not stop
//     the real ranks from forming the group.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <regex>
#include <sstream>
#include <thread>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "absl/strings/escaping.h"
#include "collectives/store.h"
#include "tests/e2e/test_cluster.h"

namespace sublet::e2e {
namespace {

using ::testing::HasSubstr;
using nlohmann::json;

constexpr auto kDeadline = std::chrono::seconds(60);
constexpr auto kPollEvery = std::chrono::milliseconds(50);

// The TCP port the URL tcp://host:port names.
std::string PortOf(const std::string& endpoint) { return endpoint.substr(endpoint.rfind(':') + 1); }

// tcpdump on loopback, writing every packet of `filter` to `pcap` as it
// arrives; stopped (and flushed) by Stop().
class Capture {
 public:
  Capture(const std::string& dir, const std::string& filter) : pcap_(dir + "/wire.pcap") {
    err_ = dir + "/tcpdump.err";
    pid_ = SpawnTo({"/usr/bin/tcpdump", "-i", "lo", "--immediate-mode", "-U", "-s", "0", "-Z", "root", "-w", pcap_,
                    filter},
                   {}, dir + "/tcpdump.out", err_);
  }
  ~Capture() {
    if (pid_ > 0) Stop();
  }
  // Whether tcpdump is capturing (it says so on stderr once the socket is open).
  bool WaitUntilListening() const { return pid_ > 0 && WaitForText(err_, "listening on lo"); }
  // Stops it; returns the number of packets it says it captured.
  int Stop() {
    kill(pid_, SIGINT);
    waitpid(pid_, nullptr, 0);
    pid_ = -1;
    std::smatch m;
    const std::string err = ReadFile(err_);
    return std::regex_search(err, m, std::regex(R"((\d+) packets? captured)")) ? std::stoi(m[1])
                                                                               : -1;
  }
  std::string Bytes() const { return ReadFile(pcap_); }
  std::string Log() const { return ReadFile(err_); }

 private:
  std::string pcap_, err_;
  pid_t pid_ = -1;
};

// The process of `job` rank `rank` whose command name is `comm`, once it exists.
std::optional<JobProcess> WaitForRank(const std::string& job, int rank, const std::string& comm) {
  const auto deadline = std::chrono::steady_clock::now() + kDeadline;
  while (std::chrono::steady_clock::now() < deadline) {
    for (JobProcess& p : ProcessesOfJob(job)) {
      if (p.comm == comm && p.env["SUBLET_RANK"] == std::to_string(rank)) return std::move(p);
    }
    std::this_thread::sleep_for(kPollEvery);
  }
  return std::nullopt;
}

TEST(WireE2eTest, ACaptureOfASessionHoldsNoTokenSpecArgumentLogLineOrJobSecret) {
  TestCluster::Options options;
  options.workers = 1;
  options.gpus = 1;
  TestCluster cluster(options);
  Capture capture(cluster.dir(), "tcp port " + PortOf(cluster.endpoint()));
  ASSERT_TRUE(capture.WaitUntilListening()) << capture.Log();

  // The worker registers again (with its token) over a fresh connection.
  cluster.KillCoordinator(SIGKILL);
  cluster.StartCoordinator();
  cluster.WaitForReadyNodes(1);

  // Every marker below is in the spec or made by the rank, never both: the
  // rank prints 6*7 into the marker, so the log line is not spec text.
  const std::string id = cluster.Submit(cluster.WriteSpec(
      "wire", "name: wire-capture-job-k3\nresources: {nodes: 1, gpus_per_node: 1}\n"
              "env: {WIRE_MARKER: env-marker-p9x4}\n"
              "command: [sh, -c, 'echo log-$((6*7))-marker; exec " +
                  Bin("../tests/reclaim_rank") + " 100000 5 ack', argv-marker-7f2q]\n"));
  cluster.WaitForState(id, "running");
  const std::optional<JobProcess> rank = WaitForRank(id, 0, "reclaim_rank");
  ASSERT_TRUE(rank.has_value());
  const std::string job_secret = rank->env.at("SUBLET_JOB_SECRET");
  ASSERT_EQ(job_secret.size(), 64u);

  const auto deadline = std::chrono::steady_clock::now() + kDeadline;
  CommandResult logs;
  do {
    logs = cluster.Sublet({"logs", id});
  } while (logs.out.find("log-42-marker") == std::string::npos &&
           std::chrono::steady_clock::now() < deadline &&
           (std::this_thread::sleep_for(kPollEvery), true));
  ASSERT_THAT(logs.out, HasSubstr("log-42-marker")) << logs.err;

  const json reclaim = cluster.Json({"reclaim", "--nodes", "node-0", "--deadline", "20s",
                                     "--reason", "reason-marker-c5d0"},
                                    "admin-token");
  const std::string rid = reclaim.value("id", "");
  json state;
  do {
    state = cluster.Json({"reclaims", rid}, "admin-token")["reclaims"][0];
  } while (state["state"] != "reclaimed" && std::chrono::steady_clock::now() < deadline &&
           (std::this_thread::sleep_for(kPollEvery), true));
  ASSERT_EQ(state["state"], "reclaimed");

  const int packets = capture.Stop();
  const std::string wire = capture.Bytes();
  // The capture saw the session: ZMTP greetings name their mechanism in clear.
  ASSERT_GT(packets, 20) << capture.Log();
  EXPECT_THAT(wire, HasSubstr("CURVE"));
  for (const std::string& secret :
       {std::string("acme-token"), std::string("admin-token"), std::string("node-token"),
        std::string("wire-capture-job-k3"), std::string("env-marker-p9x4"),
        std::string("argv-marker-7f2q"), std::string("reclaim_rank"), std::string("log-42-marker"),
        std::string("reason-marker-c5d0"), job_secret}) {
    EXPECT_EQ(wire.find(secret), std::string::npos) << "'" << secret << "' crossed the wire in clear";
  }
}

// Whether something accepts TCP connections on `address` (host:port), tried once.
bool Listens(const std::string& address) {
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(std::stoi(address.substr(address.rfind(':') + 1))));
  inet_pton(AF_INET, address.substr(0, address.rfind(':')).c_str(), &addr.sin_addr);
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  const bool connected = connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
  close(fd);
  return connected;
}

TEST(WireE2eTest, AProcessThatIsNotARankCannotReadTheRendezvousNorJoinTheMesh) {
  TestCluster::Options options;
  options.workers = 1;
  options.gpus = 2;
  TestCluster cluster(options);
  // The ranks form their group, then wait at the gate while strangers try.
  const std::string gate = cluster.shared_dir() + "/gate";
  const std::string id = cluster.Submit(cluster.WriteSpec(
      "mesh", "name: mesh\nresources: {nodes: 1, gpus_per_node: 2}\nmax_restarts: 0\n"
              "env: {COLLECTIVE_TIMEOUT_S: '120', COLLECTIVE_GATE: '" + gate + "'}\n"
              "command: [" + Bin("../tests/collective_rank") + ", '3']\n"));
  const auto deadline = std::chrono::steady_clock::now() + kDeadline;
  while (!std::filesystem::exists(gate + ".ready-0") || !std::filesystem::exists(gate + ".ready-1")) {
    ASSERT_LT(std::chrono::steady_clock::now(), deadline) << "the ranks never formed their group";
    std::this_thread::sleep_for(kPollEvery);
  }
  const std::optional<JobProcess> rank0 = WaitForRank(id, 0, "collective_rank");
  ASSERT_TRUE(rank0.has_value());
  const std::string rendezvous = rank0->env.at("SUBLET_RENDEZVOUS");
  const int store_port = std::stoi(rendezvous.substr(rendezvous.rfind(':') + 1));

  // A stranger without the secret reads nothing; one with a made-up secret
  // is refused at the handshake.
  auto plain = collectives::TcpStore::Connect("127.0.0.1", store_port,
                                              absl::Now() + absl::Seconds(30));
  ASSERT_TRUE(plain.ok()) << plain.status();
  absl::StatusOr<std::string> read = (*plain)->Get("world/mesh/1", absl::Now() + absl::Seconds(30));
  EXPECT_TRUE(absl::IsPermissionDenied(read.status())) << read.status();
  EXPECT_THAT(read.status().message(), HasSubstr("job-secret"));
  auto guessed = collectives::TcpStore::Connect("127.0.0.1", store_port,
                                                absl::Now() + absl::Seconds(30), nullptr,
                                                absl::ZeroDuration(), std::string(32, 'x'));
  EXPECT_TRUE(absl::IsPermissionDenied(guessed.status())) << guessed.status();

  // The harness (root, so it can read the rank's secret) looks the mesh
  // addresses up: once the group exists nothing listens there, so there is
  // no mesh left to join. (While it forms, each rank challenges every
  // connection: tests/collectives/tcp_mesh_test.cc drops strangers there.)
  const std::string secret = absl::HexStringToBytes(rank0->env.at("SUBLET_JOB_SECRET"));
  auto harness = collectives::TcpStore::Connect("127.0.0.1", store_port,
                                                absl::Now() + absl::Seconds(30), nullptr,
                                                absl::ZeroDuration(), secret);
  ASSERT_TRUE(harness.ok()) << harness.status();
  for (const char* key : {"world/mesh/0", "world/mesh/1"}) {
    absl::StatusOr<std::string> mesh = (*harness)->Get(key, absl::Now() + absl::Seconds(30));
    ASSERT_TRUE(mesh.ok()) << key << ": " << mesh.status();
    EXPECT_FALSE(Listens(*mesh)) << key << " = " << *mesh << " still accepts connections";
  }

  // None of that disturbed the job.
  std::ofstream(gate) << "go\n";
  cluster.WaitForState(id, "succeeded");
  for (const char* r : {"0", "1"}) {
    CommandResult out = cluster.Sublet({"logs", id, "--rank", r});
    EXPECT_THAT(out.out, HasSubstr(std::string("rank ") + r + ": 3 allreduces ok")) << out.err;
  }
}

TEST(WireE2eTest, AClientPinnedToAnotherKeyExits5OnTheHandshakeNotAtItsTimeout) {
  TestCluster::Options options;
  options.workers = 0;
  TestCluster cluster(options);
  // A well-formed key that is not the coordinator's (a worker's key file).
  const std::string other = cluster.dir() + "/other.key";
  CommandResult key = e2e::Run({Bin("sublet-worker"), "--key-file", other, "--work-dir",
                           cluster.dir() + "/other", "--show-public-key"},
                          {}, cluster.dir());
  ASSERT_EQ(key.exit_code, 0) << key.err;
  const std::string wrong = key.out.substr(0, key.out.find('\n'));
  ASSERT_NE(wrong, cluster.coordinator_key());
  CommandResult r = e2e::Run({Bin("sublet"), "--coordinator", cluster.endpoint(), "--coordinator-key",
                         wrong, "--token", "acme-token", "--timeout", "10m", "jobs"},
                        {{"HOME", cluster.dir()}, {"XDG_CONFIG_HOME", cluster.dir() + "/xdg"}},
                        cluster.dir());
  EXPECT_EQ(r.exit_code, 5) << r.err;
  EXPECT_THAT(r.err, HasSubstr("not the pinned " + wrong));
  EXPECT_THAT(r.err, ::testing::Not(HasSubstr("within")))  // not "no reply within 10m"
      << "it waited for its timeout";
  // The right key works against the same coordinator.
  EXPECT_EQ(cluster.Sublet({"jobs"}).exit_code, 0);
}

TEST(WireE2eTest, AWorkerWithAnUnlistedKeyIsRefusedAndTheRefusalIsAudited) {
  TestCluster::Options options;
  options.workers = 1;
  options.gpus = 1;
  TestCluster cluster(options);
  // Its own fresh key, the right token, the right coordinator key: only the
  // key is not listed under workers.keys.
  const std::string work = cluster.dir() + "/intruder";
  const pid_t intruder = SpawnTo(
      {Bin("sublet-worker"), "--coordinator", cluster.endpoint(), "--coordinator-key",
       cluster.coordinator_key(), "--name", "node-9", "--gpus", "8", "--work-dir", work,
       "--token-file", cluster.dir() + "/node-token", "--heartbeat", "200ms", "--no-isolation"},
      {}, cluster.dir() + "/intruder.log", cluster.dir() + "/intruder.log");
  ASSERT_GT(intruder, 0);
  const auto deadline = std::chrono::steady_clock::now() + kDeadline;
  json refusal, audit;
  while (refusal.is_null() && std::chrono::steady_clock::now() < deadline) {
    audit = cluster.Json({"audit"}, "admin-token");
    for (const json& e : audit["entries"]) {
      if (e["action"] == "registration_refused" && e["who"] == "worker:node-9") refusal = e;
    }
    if (refusal.is_null()) std::this_thread::sleep_for(kPollEvery);
  }
  kill(intruder, SIGKILL);
  waitpid(intruder, nullptr, 0);
  ASSERT_FALSE(refusal.is_null()) << audit.dump(2);
  EXPECT_THAT(refusal["detail"].get<std::string>(), HasSubstr("not listed under workers.keys"));
  const json nodes = cluster.Json({"nodes"}, "admin-token");  // a range-for over a temporary's member dangles
  ASSERT_FALSE(nodes["nodes"].empty());
  for (const json& n : nodes["nodes"]) {
    EXPECT_NE(n["name"], "node-9") << "an unlisted node registered";
  }
  EXPECT_THAT(ReadFile(cluster.dir() + "/intruder.log"), HasSubstr("may not register"));
}

}  // namespace
}  // namespace sublet::e2e

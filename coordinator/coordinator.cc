#include "coordinator/coordinator.h"

#include <sodium.h>

#include <cerrno>
#include <filesystem>
#include <fstream>

#include "absl/strings/numbers.h"
#include "common/log.h"
#include "coordinator/views.h"
#include "fmt/format.h"
#include "protocols/codec.h"

namespace sublet::coordinator {
namespace {

using protocols::Body;
using protocols::Envelope;

bool IsWorkerReply(const Body& body) {
  return std::holds_alternative<protocols::LogsReply>(body) ||
         std::holds_alternative<protocols::ErrorReply>(body);
}

// What one frame from a client or worker may cost the coordinator to decode.
// Requests and worker reports are small; replies (big job lists) only flow
// the other way.
protocols::CodecLimits ServerLimits() {
  protocols::CodecLimits limits;
  limits.max_frame_bytes = 4 << 20;
  limits.max_total_elements = 100'000;
  return limits;
}

// The key rank secrets are derived from: 32 random bytes, hex in the file.
absl::StatusOr<std::string> RankSecretKey(const std::string& state_dir) {
  const std::string path = state_dir + "/" + kRankSecretKeyFile;
  std::string hex;
  if (std::ifstream in(path); in) {
    std::getline(in, hex);
  } else {
    std::string key(32, '\0');
    randombytes_buf(key.data(), key.size());
    hex.resize(65);
    sodium_bin2hex(hex.data(), hex.size(), reinterpret_cast<const unsigned char*>(key.data()),
                   key.size());
    hex.pop_back();
    SUBLET_RETURN_IF_ERROR(protocols::WriteFileAtomically(path, hex + "\n", 0600));
  }
  std::string key(32, '\0');
  size_t length = 0;
  if (sodium_hex2bin(reinterpret_cast<unsigned char*>(key.data()), key.size(), hex.data(),
                     hex.size(), nullptr, &length, nullptr) != 0 ||
      length != key.size()) {
    return absl::DataLossError(fmt::format(
        "{}: not 64 hex digits (delete it to make a new one; running jobs then restart their "
        "rendezvous at their next attempt)",
        path));
  }
  return key;
}

}  // namespace

absl::StatusOr<protocols::CurveKeyPair> CoordinatorKeys(const std::string& state_dir) {
  bool created = false;
  SUBLET_ASSIGN_OR_RETURN(
      protocols::CurveKeyPair keys,
      protocols::LoadOrCreateKeyFile(state_dir + "/" + kCoordinatorKeyFile, &created));
  if (created) Log(LogLevel::kInfo, "key_created", {{"public_key", keys.public_key}});
  SUBLET_RETURN_IF_ERROR(protocols::WriteFileAtomically(
      state_dir + "/" + kCoordinatorPublicKeyFile, keys.public_key + "\n", 0644));
  return keys;
}

absl::StatusOr<std::unique_ptr<Coordinator>> Coordinator::Create(CoordinatorOptions options,
                                                                  zmq::context_t& context,
                                                                  const Clock& clock) {
  std::error_code ec;
  std::filesystem::create_directories(options.state_dir, ec);
  if (ec) {
    return absl::UnavailableError(
        fmt::format("cannot create state dir {}: {}", options.state_dir, ec.message()));
  }
  // The state names every tenant's jobs and commands: the coordinator's
  // user alone may read it.
  std::filesystem::permissions(options.state_dir, std::filesystem::perms::owner_all,
                               std::filesystem::perm_options::replace, ec);
  SUBLET_ASSIGN_OR_RETURN(std::unique_ptr<Store> store,
                          Store::Open(options.state_dir + "/state.db"));
  if (sodium_init() < 0) return absl::InternalError("libsodium cannot initialise");
  SUBLET_ASSIGN_OR_RETURN(options.config.rank_secret_key, RankSecretKey(options.state_dir));
  std::optional<protocols::CurveKeyPair> keys;
  if (!options.plaintext) {
    SUBLET_ASSIGN_OR_RETURN(keys, CoordinatorKeys(options.state_dir));
  }
  std::unique_ptr<Coordinator> c(new Coordinator(std::move(options), context, clock,
                                                 std::move(store)));
  SUBLET_RETURN_IF_ERROR(c->cluster_.Recover());
  if (keys) {
    // Every CURVE client is let in and labelled with its key: tenants prove
    // who they are with tokens inside the channel, nodes by listed keys. A
    // handshake without CURVE never gets this far.
    SUBLET_RETURN_IF_ERROR(c->channel_.EnableCurve(
        *keys, protocols::AdmitCurveClients, [](const protocols::ZapRequest& request) {
          Log(LogLevel::kWarn, "handshake_refused",
              {{"mechanism", request.mechanism}, {"address", request.address}});
        }));
    c->public_key_ = keys->public_key;
  }
  if (c->options_.config.worker_keys.empty() && !c->options_.plaintext) {
    Log(LogLevel::kWarn, "no_worker_keys",
        {{"fix", "list each node's public key under workers.keys in the config "
                 "(sublet-worker --key-file FILE --show-public-key prints it)"}});
  }
  SUBLET_RETURN_IF_ERROR(c->channel_.Bind(c->options_.listen));
  Log(LogLevel::kInfo, "listening", {{"endpoint", c->endpoint()},
                                     {"public_key", c->public_key_.empty() ? "none (plaintext)"
                                                                           : c->public_key_},
                                     {"jobs", c->cluster_.jobs().size()},
                                     {"nodes", c->cluster_.nodes().size()}});
  return c;
}

Coordinator::Coordinator(CoordinatorOptions options, zmq::context_t& context, const Clock& clock,
                         std::unique_ptr<Store> store)
    : options_(std::move(options)),
      clock_(clock),
      store_(std::move(store)),
      cluster_(*store_, clock_, options_.config),
      channel_(context, ServerLimits()) {}

void Coordinator::Run(const std::atomic<bool>& stop) {
  while (!stop.load()) {
    zmq::pollitem_t item{channel_.socket().handle(), 0, ZMQ_POLLIN, 0};
    absl::Duration wait = std::clamp(next_tick_ - clock_.Now(), absl::ZeroDuration(), options_.tick);
    try {
      zmq::poll(&item, 1, std::chrono::milliseconds(absl::ToInt64Milliseconds(wait)));
    } catch (const zmq::error_t& e) {
      // A signal (SIGTERM, SIGINT: `stop` is set by then) interrupted the
      // wait; the loop checks `stop` and the turn below runs as usual.
      if (e.num() != EINTR) throw;
    }
    std::vector<protocols::Incoming> batch;
    while (batch.size() < options_.max_batch) {
      std::optional<protocols::Incoming> in = channel_.TryReceive();
      if (!in) break;
      batch.push_back(std::move(*in));
    }
    Turn(batch);
  }
}

std::vector<std::pair<std::string, protocols::Envelope>> Coordinator::TEST_Turn(
    std::vector<protocols::Incoming> batch) {
  Process(batch);
  std::vector<std::pair<std::string, protocols::Envelope>> sent;
  for (Outgoing& out : outbox_) sent.emplace_back(out.peer, std::move(out.envelope));
  outbox_.clear();
  return sent;
}

void Coordinator::Turn(std::vector<protocols::Incoming>& batch) {
  Process(batch);
  Flush();
}

void Coordinator::Process(std::vector<protocols::Incoming>& batch) {
  const absl::Time now = clock_.Now();
  const bool tick_due = now >= next_tick_;
  if (batch.empty() && !tick_due && !cluster_.NeedsScheduling()) return;
  batch_failed_ = absl::OkStatus();
  batch_requests_.clear();
  reported_.clear();
  frames_this_turn_.clear();
  absl::Status status = store_->Begin();
  if (status.ok()) {
    for (protocols::Incoming& in : batch) Dispatch(in);
    try {
      if (tick_due) {
        Note(cluster_.CheckTimeouts());
        ExpireLogProxies();
        next_tick_ = now + options_.tick;
      }
      if (batch_failed_.ok() && cluster_.NeedsScheduling()) Note(cluster_.Schedule());
      QueueSyncs();
    } catch (const std::exception& e) {
      // A bug in a pass: nothing of this turn is kept; the next turn retries.
      Log(LogLevel::kError, "pass_crashed", {{"error", e.what()}});
      Note(absl::InternalError(fmt::format("internal error in a scheduling pass: {}", e.what())));
    }
    status = batch_failed_.ok() ? store_->Commit() : batch_failed_;
  }
  if (!status.ok()) Abandon(status);
}

// The store failed: nothing of this batch happened. Reload the last committed
// state and tell every requester to retry.
void Coordinator::Abandon(const absl::Status& cause) {
  Log(LogLevel::kError, "store_failed", {{"error", std::string(cause.message())}});
  store_->Rollback();
  outbox_.clear();
  absl::Status recovered = cluster_.Reload();
  if (!recovered.ok()) {
    Log(LogLevel::kError, "recover_failed", {{"error", std::string(recovered.message())}});
  }
  absl::Status reply = absl::UnavailableError(
      fmt::format("coordinator could not store the change, retry: {}", std::string(cause.message())));
  for (const auto& [peer, id] : batch_requests_) {
    outbox_.push_back({peer, protocols::ErrorEnvelope(id, reply)});
  }
}

void Coordinator::Note(const absl::Status& status) {
  if (!status.ok() && batch_failed_.ok()) batch_failed_ = status;
}

void Coordinator::Dispatch(protocols::Incoming& in) {
  if (!in.envelope.ok()) {
    ++bad_frames_;
    Log(LogLevel::kWarn, "bad_frame", {{"bytes", in.frame_bytes}, {"total_bad", bad_frames_},
                                       {"error", std::string(in.envelope.status().message())}});
    outbox_.push_back({in.peer, protocols::ErrorEnvelope(0, in.envelope.status())});
    return;
  }
  Envelope& env = *in.envelope;
  if (++frames_this_turn_[in.peer] > options_.max_frames_per_peer) {
    if (++throttled_frames_ % 1000 == 1) {
      Log(LogLevel::kWarn, "throttled", {{"total_throttled", throttled_frames_}});
    }
    outbox_.push_back({in.peer, protocols::ErrorEnvelope(env.request_id, absl::ResourceExhaustedError(
        "too many requests at once from this connection; retry"))});
    return;
  }
  if (IsWorkerReply(env.body)) {
    HandleWorkerReply(env, in.peer);
    return;
  }
  if (!batch_failed_.ok() || !store_->Savepoint().ok()) {
    // The store already failed this turn: the batch is rolled back and every
    // request in it is told to retry, this one too.
    Note(store_->failure());
    if (!std::holds_alternative<protocols::WorkerReport>(env.body)) {
      batch_requests_.push_back({in.peer, env.request_id});
    }
    return;
  }
  const size_t outbox_mark = outbox_.size();
  try {
    Apply(env, in.peer, in.user_id);
    if (options_.TEST_after_request) options_.TEST_after_request(env);
    if (store_->failure().ok()) (void)store_->ReleaseSavepoint();
  } catch (const std::exception& e) {
    // Last resort: a bug must fail only this request, never the daemon, and
    // leave nothing half-applied: its writes are rolled back and the state
    // is reloaded as the batch left it before this request.
    Log(LogLevel::kError, "request_crashed", {{"request", env.request_id}, {"error", e.what()}});
    outbox_.resize(outbox_mark);
    absl::Status undone = store_->RollbackToSavepoint();
    if (undone.ok()) undone = cluster_.Reload();
    if (!undone.ok()) Note(undone);
    Reply(in.peer, env.request_id,
          protocols::ErrorEnvelope(0, absl::InternalError("internal error")).body);
  }
  // After the savepoint, kept or undone: a refusal's audit entry stays.
  Note(cluster_.WriteRefusals());
  Note(store_->failure());
}

// Authenticates one request and applies it; its reply goes to the outbox.
void Coordinator::Apply(protocols::Envelope& env, const std::string& peer,
                        const std::string& user_id) {
  if (channel_.curve() && !user_id.starts_with(protocols::kCurveUserIdPrefix)) {
    // Fails closed: a connection the ZAP handler did not label (no handler,
    // or a mechanism it did not ask about) is served nothing.
    Log(LogLevel::kWarn, "unlabelled_connection", {{"request", env.request_id}});
    Reply(peer, env.request_id, protocols::ErrorEnvelope(0, absl::PermissionDeniedError(
                                    "connection not authenticated by CURVE")).body);
    return;
  }
  if (std::holds_alternative<protocols::WorkerReport>(env.body)) {
    if (AdmitNode(env, peer, user_id)) HandleReport(std::get<protocols::WorkerReport>(env.body), peer);
    return;
  }
  std::optional<Principal> who = options_.config.Authenticate(env.token);
  if (!who) {
    Log(LogLevel::kWarn, "auth_refused", {{"request", env.request_id}});
    const char* why =
        env.token.empty()
            ? "no token given: pass --token TOKEN or set SUBLET_TOKEN (`sublet up` writes a "
              "context file that holds one)"
            : "unknown token: it is not in the coordinator's config (check --token or "
              "SUBLET_TOKEN)";
    Reply(peer, env.request_id, protocols::ErrorEnvelope(0, absl::PermissionDeniedError(why)).body);
    return;
  }
  batch_requests_.push_back({peer, env.request_id});
  bool deferred = false;
  absl::StatusOr<Body> reply = HandleApi(*who, env, peer, deferred);
  if (deferred) return;
  Reply(peer, env.request_id,
        reply.ok() ? *std::move(reply) : protocols::ErrorEnvelope(0, reply.status()).body);
}

bool Coordinator::AdmitNode(const protocols::Envelope& env, const std::string& peer,
                            const std::string& user_id) {
  const auto& report = std::get<protocols::WorkerReport>(env.body);
  const Config& config = options_.config;
  std::string refusal;
  std::string key;
  if (channel_.curve()) {
    key = user_id.substr(protocols::kCurveUserIdPrefix.size());
    if (!config.worker_keys.contains(key)) {
      refusal = fmt::format("node key {} is not listed under workers.keys in the coordinator's "
                            "config", key);
    }
  } else if (!config.worker_token) {
    refusal = "plaintext coordinator without workers.token";
  }
  if (refusal.empty() && (config.worker_token || !channel_.curve())) {
    std::optional<Principal> who = config.Authenticate(env.token);
    if (!who || who->role != Role::kWorker) refusal = "the worker token is missing or wrong";
  }
  if (refusal.empty()) return true;
  Log(LogLevel::kWarn, "node_refused", {{"node", report.node}, {"error", refusal}});
  // Audited once per key, for at most 1000 keys a run: anyone can mint
  // keys, and the audit log must not become theirs to fill.
  if (audited_node_keys_.size() < 1000 && audited_node_keys_.insert(key).second) {
    cluster_.NoteRefusal(fmt::format("worker:{}", report.node), "registration_refused",
                         fmt::format("{} (refused node registrations not audited so far: {})",
                                     refusal, unaudited_node_refusals_));
  } else {
    ++unaudited_node_refusals_;
  }
  Reply(peer, env.request_id,
        protocols::ErrorEnvelope(0, absl::PermissionDeniedError(fmt::format(
                                        "this node may not register: {}", refusal))).body);
  return false;
}

void Coordinator::HandleReport(const protocols::WorkerReport& report, const std::string& peer) {
  absl::StatusOr<protocols::WorkerSync> sync = cluster_.OnWorkerReport(report, peer);
  if (!sync.ok()) {
    Log(LogLevel::kWarn, "report_refused", {{"node", report.node},
                                            {"error", std::string(sync.status().message())}});
    return;
  }
  std::vector<protocols::RankKey>& acked = reported_[report.node];
  acked.insert(acked.end(), sync->acked_exits.begin(), sync->acked_exits.end());
}

void Coordinator::Reply(const std::string& peer, uint64_t request_id, Body body) {
  Envelope e;
  e.request_id = request_id;
  e.body = std::move(body);
  outbox_.push_back({peer, std::move(e)});
}

// One sync per node that reported or whose desired ranks changed, built after
// scheduling so that launches go out in the same turn that freed capacity.
void Coordinator::QueueSyncs() {
  std::set<std::string> names = cluster_.TakeDirtyNodes();
  for (const auto& [name, acked] : reported_) names.insert(name);
  for (const std::string& name : names) {
    const Node* node = cluster_.FindNode(name);
    if (!node || node->peer.empty()) continue;
    protocols::WorkerSync sync = cluster_.SyncFor(*node);
    auto it = reported_.find(name);
    if (it != reported_.end()) sync.acked_exits = it->second;
    Reply(node->peer, 0, std::move(sync));
  }
}

void Coordinator::Flush() {
  for (Outgoing& out : outbox_) {
    absl::Status s = channel_.Send(out.peer, out.envelope);
    if (!s.ok()) Log(LogLevel::kDebug, "send_failed", {{"error", std::string(s.message())}});
  }
  outbox_.clear();
}

}  // namespace sublet::coordinator

#include "collectives/store.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <map>
#include <mutex>
#include <thread>

#include "absl/strings/str_cat.h"
#include "collectives/internal/peer_auth.h"
#include "collectives/internal/socket.h"
#include "common/status.h"

namespace sublet::collectives {

using internal::Fd;

namespace {

enum Command : uint8_t { kSet = 1, kGet = 2, kAdd = 3 };
enum Code : uint8_t { kOk = 0, kTimedOut = 1, kRefused = 2 };

void PutU32(std::string& s, uint32_t v) { s.append(reinterpret_cast<const char*>(&v), 4); }
void PutI64(std::string& s, int64_t v) { s.append(reinterpret_cast<const char*>(&v), 8); }

}  // namespace

// ---------------------------------------------------------------- server

class TcpStoreServer::Impl {
 public:
  Impl(Fd listener, int port, StoreLimits limits, std::string secret)
      : listener_(std::move(listener)), port_(port), limits_(limits), secret_(std::move(secret)) {
    if (pipe2(wake_, O_CLOEXEC) != 0) wake_[0] = wake_[1] = -1;
    accept_thread_ = std::thread([this] { AcceptLoop(); });
  }

  ~Impl() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
      for (int fd : conns_) shutdown(fd, SHUT_RDWR);
    }
    cv_.notify_all();
    if (wake_[1] >= 0 && write(wake_[1], "x", 1) < 0) {
    }
    accept_thread_.join();
    for (auto& [id, t] : handlers_) t.join();
    if (wake_[0] >= 0) close(wake_[0]);
    if (wake_[1] >= 0) close(wake_[1]);
  }

  int port() const { return port_; }

  void WaitForClientsToLeave(absl::Time deadline) {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait_until(lock, absl::ToChronoTime(deadline), [&] { return clients_ == 0; });
  }

 private:
  void AcceptLoop() {
    while (true) {
      pollfd p[2] = {{listener_.get(), POLLIN, 0}, {wake_[0], POLLIN, 0}};
      poll(p, 2, -1);
      std::lock_guard<std::mutex> lock(mu_);
      if (stop_) return;
      auto conn = internal::Accept(listener_.get(), absl::Now(), "store");
      if (!conn.ok()) continue;
      ReapFinishedHandlers();
      // Connections still proving the secret count too: strangers cannot
      // crowd out ranks beyond the limit, and only for the handshake timeout.
      if (static_cast<int>(conns_.size()) >= limits_.max_connections) continue;  // closes it
      conns_.push_back(conn->get());
      const bool admitted = secret_.empty();
      if (admitted) ++clients_;
      const int id = next_handler_++;
      handlers_.emplace(id, std::thread([this, id, admitted, c = std::move(*conn)]() mutable {
                          Serve(id, std::move(c), admitted);
                        }));
    }
  }

  // Joins the handlers that have returned. Requires mu_.
  void ReapFinishedHandlers() {
    for (int id : finished_) {
      auto it = handlers_.find(id);
      it->second.join();  // it has left Serve; only its return remains
      handlers_.erase(it);
    }
    finished_.clear();
  }

  // One connection, on its own thread: the job-secret handshake when the
  // store has a secret, then requests until the peer goes away or breaks a
  // limit. A connection that fails the handshake is closed with nothing sent
  // but the challenge.
  void Serve(int id, Fd conn, bool admitted) {
    if (!admitted) {
      internal::PeerAuth auth{secret_, internal::AuthPurpose::kStore, "", "store client"};
      admitted = internal::ChallengeConnector(conn.get(), auth,
                                              absl::Now() + internal::kAcceptorHandshakeTimeout)
                     .ok();
      std::lock_guard<std::mutex> lock(mu_);
      if (admitted) ++clients_;
    }
    if (admitted) ServeRequests(conn.get());
    std::lock_guard<std::mutex> lock(mu_);
    std::erase(conns_, conn.get());
    if (admitted) --clients_;
    finished_.push_back(id);
    cv_.notify_all();
  }

  void ServeRequests(int fd) {
    const absl::Time forever = absl::InfiniteFuture();
    while (true) {
      uint8_t cmd;
      uint32_t klen;
      if (!internal::ReadFull(fd, &cmd, 1, forever, "store client").ok()) break;
      if (!internal::ReadFull(fd, &klen, 4, forever, "store client").ok()) break;
      if (klen > limits_.max_key_bytes) break;
      std::string key(klen, '\0');
      if (!internal::ReadFull(fd, key.data(), klen, forever, "store client").ok()) break;
      std::string reply;
      if (!Handle(fd, cmd, key, reply)) break;
      if (!internal::WriteFull(fd, reply.data(), reply.size(), absl::Now() + absl::Seconds(30),
                               "store client")
               .ok()) {
        break;
      }
    }
  }

  static std::string Reply(Code code, const std::string& payload) {
    std::string r(1, static_cast<char>(code));
    PutU32(r, static_cast<uint32_t>(payload.size()));
    return r + payload;
  }

  // Returns false to drop the connection (malformed or over a limit).
  bool Handle(int fd, uint8_t cmd, const std::string& key, std::string& reply) {
    const absl::Time soon = absl::Now() + absl::Seconds(30);
    if (cmd == kSet) {
      uint32_t vlen;
      if (!internal::ReadFull(fd, &vlen, 4, soon, "store client").ok()) return false;
      if (vlen > limits_.max_value_bytes) return false;
      std::string value(vlen, '\0');
      if (!internal::ReadFull(fd, value.data(), vlen, soon, "store client").ok()) return false;
      std::lock_guard<std::mutex> lock(mu_);
      auto it = data_.find(key);
      size_t old = it == data_.end() ? 0 : key.size() + it->second.size();
      if (total_ - old + key.size() + vlen > limits_.max_total_bytes) {
        reply = Reply(kRefused, "store full");
        return true;
      }
      total_ = total_ - old + key.size() + vlen;
      data_[key] = std::move(value);
      cv_.notify_all();
      reply = Reply(kOk, "");
      return true;
    }
    int64_t arg;
    if (!internal::ReadFull(fd, &arg, 8, soon, "store client").ok()) return false;
    std::unique_lock<std::mutex> lock(mu_);
    if (cmd == kGet) {
      auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(std::max<int64_t>(arg, 0));
      bool found = cv_.wait_until(lock, deadline, [&] { return stop_ || data_.count(key) > 0; });
      if (stop_) return false;
      reply = found ? Reply(kOk, data_[key]) : Reply(kTimedOut, "");
      return true;
    }
    if (cmd == kAdd) {
      std::string& slot = data_[key];
      int64_t v = 0;
      if (slot.size() == 8) memcpy(&v, slot.data(), 8);
      v += arg;
      if (slot.empty()) total_ += key.size() + 8;
      slot.assign(reinterpret_cast<const char*>(&v), 8);
      cv_.notify_all();
      std::string payload;
      PutI64(payload, v);
      reply = Reply(kOk, payload);
      return true;
    }
    return false;
  }

  Fd listener_;
  const int port_;
  const StoreLimits limits_;
  const std::string secret_;  // empty: no handshake
  int wake_[2] = {-1, -1};
  std::thread accept_thread_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;                       // guarded by mu_
  std::vector<int> conns_;                  // guarded by mu_: open connections
  int clients_ = 0;                         // guarded by mu_: of those, past the handshake
  std::map<int, std::thread> handlers_;     // guarded by mu_: by id (joined when finished)
  std::vector<int> finished_;               // guarded by mu_: handlers that have returned
  int next_handler_ = 0;                    // guarded by mu_
  std::map<std::string, std::string> data_;  // guarded by mu_
  size_t total_ = 0;                         // guarded by mu_
};

absl::StatusOr<std::unique_ptr<TcpStoreServer>> TcpStoreServer::Start(const std::string& host,
                                                                      int port, StoreLimits limits,
                                                                      std::string_view secret) {
  SUBLET_RETURN_IF_ERROR(internal::CheckSecretSize(secret, "rendezvous store"));
  if (!secret.empty()) SUBLET_RETURN_IF_ERROR(internal::SodiumReady());
  int bound = 0;
  SUBLET_ASSIGN_OR_RETURN(Fd fd, internal::Listen(host, port, &bound));
  return std::unique_ptr<TcpStoreServer>(new TcpStoreServer(
      std::make_unique<Impl>(std::move(fd), bound, limits, std::string(secret))));
}

TcpStoreServer::TcpStoreServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
TcpStoreServer::~TcpStoreServer() = default;
int TcpStoreServer::port() const { return impl_->port(); }
void TcpStoreServer::WaitForClientsToLeave(absl::Time deadline) {
  impl_->WaitForClientsToLeave(deadline);
}

// ---------------------------------------------------------------- client

class TcpStore::Impl {
 public:
  Impl(Fd fd, std::string where, std::shared_ptr<TcpStoreServer> server, absl::Duration linger)
      : fd_(std::move(fd)), where_(std::move(where)), server_(std::move(server)), linger_(linger) {}
  ~Impl() {
    fd_.Reset();
    if (server_ && server_.use_count() == 1) {
      server_->WaitForClientsToLeave(absl::Now() + linger_);
    }
  }

  // Sends one request and reads its response; the connection is serialised.
  absl::StatusOr<std::string> Call(const std::string& request, absl::Time deadline) {
    std::lock_guard<std::mutex> lock(mu_);
    const std::string what = absl::StrCat("rendezvous store at ", where_);
    SUBLET_RETURN_IF_ERROR(internal::WriteFull(fd_.get(), request.data(), request.size(),
                                               deadline, what));
    uint8_t code;
    uint32_t len;
    SUBLET_RETURN_IF_ERROR(internal::ReadFull(fd_.get(), &code, 1, deadline, what));
    if (code > kRefused) shutdown(fd_.get(), SHUT_RDWR);  // out of step: no later call may read on
    if (code == internal::kChallengeMarker) {
      return absl::PermissionDeniedError(
          absl::StrCat(what,
                       ": the store demands the job-secret challenge and this client has no secret "
                       "(SUBLET_JOB_SECRET unset?)"));
    }
    if (code > kRefused) return absl::DataLossError(absl::StrCat(what, ": bad reply code"));
    SUBLET_RETURN_IF_ERROR(internal::ReadFull(fd_.get(), &len, 4, deadline, what));
    if (len > (size_t{16} << 20)) return absl::DataLossError(what + ": oversized reply");
    std::string payload(len, '\0');
    SUBLET_RETURN_IF_ERROR(internal::ReadFull(fd_.get(), payload.data(), len, deadline, what));
    if (code == kTimedOut) return absl::DeadlineExceededError("");
    if (code != kOk) return absl::ResourceExhaustedError(absl::StrCat(what, ": ", payload));
    return payload;
  }

  Fd fd_;
  std::string where_;
  std::shared_ptr<TcpStoreServer> server_;
  absl::Duration linger_;
  std::mutex mu_;
};

absl::StatusOr<std::shared_ptr<TcpStore>> TcpStore::Connect(const std::string& host, int port,
                                                            absl::Time deadline,
                                                            std::shared_ptr<TcpStoreServer> server,
                                                            absl::Duration linger,
                                                            std::string_view secret) {
  std::string where = absl::StrCat(host, ":", port);
  SUBLET_RETURN_IF_ERROR(internal::CheckSecretSize(secret, "rendezvous store at " + where));
  SUBLET_ASSIGN_OR_RETURN(Fd fd, internal::Connect(host, port, deadline, "rendezvous store"));
  if (!secret.empty()) {
    internal::PeerAuth auth{secret, internal::AuthPurpose::kStore, "",
                            "rendezvous store at " + where};
    SUBLET_RETURN_IF_ERROR(internal::AnswerChallenge(fd.get(), auth, "", deadline));
  }
  return std::shared_ptr<TcpStore>(new TcpStore(
      std::make_unique<Impl>(std::move(fd), std::move(where), std::move(server), linger)));
}

TcpStore::TcpStore(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
TcpStore::~TcpStore() = default;

namespace {
std::string Request(Command cmd, const std::string& key) {
  std::string r(1, static_cast<char>(cmd));
  PutU32(r, static_cast<uint32_t>(key.size()));
  return r + key;
}
}  // namespace

absl::Status TcpStore::Set(const std::string& key, const std::string& value) {
  std::string r = Request(kSet, key);
  PutU32(r, static_cast<uint32_t>(value.size()));
  r += value;
  return impl_->Call(r, absl::Now() + absl::Seconds(60)).status();
}

absl::StatusOr<std::string> TcpStore::Get(const std::string& key, absl::Time deadline) {
  // Long waits are cut into server-side waits of at most 10 s so that a lost
  // server is noticed by the socket deadline.
  while (true) {
    absl::Duration left = deadline - absl::Now();
    int64_t ms = std::clamp<int64_t>(absl::ToInt64Milliseconds(left), 0, 10'000);
    std::string r = Request(kGet, key);
    PutI64(r, ms);
    auto got = impl_->Call(r, absl::Now() + absl::Milliseconds(ms) + absl::Seconds(30));
    if (got.ok() || !absl::IsDeadlineExceeded(got.status()) || !got.status().message().empty()) {
      return got;
    }
    if (absl::Now() >= deadline) {
      return absl::DeadlineExceededError(absl::StrCat("store key '", key, "' not set in time"));
    }
  }
}

absl::StatusOr<int64_t> TcpStore::Add(const std::string& key, int64_t delta) {
  std::string r = Request(kAdd, key);
  PutI64(r, delta);
  SUBLET_ASSIGN_OR_RETURN(std::string v, impl_->Call(r, absl::Now() + absl::Seconds(60)));
  if (v.size() != 8) return absl::DataLossError("store: bad add reply");
  int64_t out;
  memcpy(&out, v.data(), 8);
  return out;
}

std::string TcpStore::LocalAddress() const { return internal::LocalAddress(impl_->fd_.get()); }

absl::StatusOr<std::vector<std::string>> AllGatherViaStore(Store& store, const std::string& name,
                                                           int rank, int size,
                                                           const std::string& value,
                                                           absl::Time deadline) {
  SUBLET_RETURN_IF_ERROR(store.Set(absl::StrCat(name, "/", rank), value));
  std::vector<std::string> all(size);
  for (int r = 0; r < size; ++r) {
    auto got = store.Get(absl::StrCat(name, "/", r), deadline);
    if (absl::IsDeadlineExceeded(got.status())) {
      return absl::DeadlineExceededError(
          absl::StrCat("rendezvous '", name, "': rank ", r, " never arrived"));
    }
    if (!got.ok()) return got.status();
    all[r] = std::move(*got);
  }
  return all;
}

}  // namespace sublet::collectives

// The rendezvous store: a small key-value service that rank 0 serves over TCP
// (like PyTorch's TCPStore). Ranks publish their addresses and shared-memory
// names in it and wait for each other's; it carries no bulk data.
//
// Protocol, on a persistent connection:
//   0. When the store has a job secret (SUBLET_JOB_SECRET, 32 bytes), the
//      server first runs the challenge-response of internal/peer_auth.h
//      (purpose "store", empty context): it sends 0xa7 || Ns, the client
//      answers Nc || HMAC(secret, "sublet/store/connector" || Ns || Nc), the
//      server checks it and answers HMAC(secret, "sublet/store/acceptor" ||
//      Nc || Ns), which the client checks. A connection that fails is closed
//      before any request is read; one that stays silent is closed after
//      10 s. The secret is never sent. Without a secret there is no step 0.
//   Then one request, one response at a time:
//   1. Request: u8 command (1 set, 2 get, 3 add), u32 key length, key bytes,
//      then for set: u32 value length + value; for get: i64 wait in ms;
//      for add: i64 delta. Integers are little-endian.
//   2. Response: u8 code (0 ok, 1 timed out, 2 refused), u32 length, payload
//      (get: the value; add: the new value as 8 bytes; refused: the reason).
//   3. get blocks in the server until the key exists or the wait runs out.
// Untrusted input is bounded: keys <= 1 KiB, values <= 16 MiB, 256 MiB in all,
// 4096 connections (those still in step 0 included); anything else closes
// that connection. Each connection is served on its own thread, so a slow
// or silent peer holds up no one else.
//
// Thread-safety: TcpStore and PrefixStore are safe to share between threads.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace sublet::collectives {

class Store {
 public:
  virtual ~Store() = default;
  virtual absl::Status Set(const std::string& key, const std::string& value) = 0;
  // Waits until `key` exists; DeadlineExceeded naming the key after `deadline`.
  virtual absl::StatusOr<std::string> Get(const std::string& key, absl::Time deadline) = 0;
  // Adds `delta` to the integer at `key` (absent = 0); returns the new value.
  virtual absl::StatusOr<int64_t> Add(const std::string& key, int64_t delta) = 0;
  // An address of this host that the store's server can reach us on.
  virtual std::string LocalAddress() const = 0;
};

struct StoreLimits {
  size_t max_key_bytes = 1024;
  size_t max_value_bytes = size_t{16} << 20;
  size_t max_total_bytes = size_t{256} << 20;
  int max_connections = 4096;
};

// Serves the store on host:port (port 0: an ephemeral one) until destroyed.
// `secret`: empty (anyone who reaches the port is served) or the job
// attempt's 32 raw bytes (only clients that prove it are).
class TcpStoreServer {
 public:
  static absl::StatusOr<std::unique_ptr<TcpStoreServer>> Start(const std::string& host, int port,
                                                               StoreLimits limits = {},
                                                               std::string_view secret = {});
  ~TcpStoreServer();
  int port() const;
  // Waits until no client is connected (past the handshake), or until `deadline`.
  void WaitForClientsToLeave(absl::Time deadline);

  class Impl;

 private:
  explicit TcpStoreServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// A connection to a TcpStoreServer. May own the server (rank 0's client does),
// so that the store lives as long as any communicator built on it; the owner's
// destructor then waits (up to `linger`) for the other ranks to disconnect, so
// a rank 0 that finishes first does not pull the store from under the others.
// Bootstrap passes the collective timeout: a peer silent that long is hung,
// and waiting longer would only delay reporting the failure.
// `secret` must be the server's: with one, Connect proves it and checks the
// server's proof (PermissionDenied naming the store if either fails); with
// none, a server that demands one makes the first call PermissionDenied and
// the connection unusable.
class TcpStore final : public Store {
 public:
  static absl::StatusOr<std::shared_ptr<TcpStore>> Connect(
      const std::string& host, int port, absl::Time deadline,
      std::shared_ptr<TcpStoreServer> server = nullptr, absl::Duration linger = absl::Seconds(30),
      std::string_view secret = {});
  ~TcpStore() override;

  absl::Status Set(const std::string& key, const std::string& value) override;
  absl::StatusOr<std::string> Get(const std::string& key, absl::Time deadline) override;
  absl::StatusOr<int64_t> Add(const std::string& key, int64_t delta) override;
  std::string LocalAddress() const override;

  class Impl;

 private:
  explicit TcpStore(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Prepends "<prefix>/" to every key of an underlying store.
class PrefixStore final : public Store {
 public:
  PrefixStore(std::shared_ptr<Store> base, std::string prefix)
      : base_(std::move(base)), prefix_(std::move(prefix) + "/") {}
  absl::Status Set(const std::string& key, const std::string& value) override {
    return base_->Set(prefix_ + key, value);
  }
  absl::StatusOr<std::string> Get(const std::string& key, absl::Time deadline) override {
    return base_->Get(prefix_ + key, deadline);
  }
  absl::StatusOr<int64_t> Add(const std::string& key, int64_t delta) override {
    return base_->Add(prefix_ + key, delta);
  }
  std::string LocalAddress() const override { return base_->LocalAddress(); }

 private:
  std::shared_ptr<Store> base_;
  std::string prefix_;
};

// Every rank sets "<name>/<rank>" = `value` and gets all ranks' values.
absl::StatusOr<std::vector<std::string>> AllGatherViaStore(Store& store, const std::string& name,
                                                           int rank, int size,
                                                           const std::string& value,
                                                           absl::Time deadline);

}  // namespace sublet::collectives

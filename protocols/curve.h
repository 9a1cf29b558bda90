// CURVE keys and the ZAP handler: the wire security of every TCP connection
// between clients, workers and the coordinator (libzmq's CurveZMQ, RFC 26;
// nothing home-made).
//
// Keys are ZeroMQ's Z85 text, 40 characters per 32-byte key. A key file holds
// one line, the secret key (like WireGuard's `wg genkey`); the public key is
// derived from it. Key files must not be readable by group or others.
//
// The ZAP handler (RFC 27) runs on its own thread in the server's ZeroMQ
// context and answers the handshakes of every socket with a ZAP domain. It
// admits a connection only through its policy, and labels each admitted one
// with a User-Id that every message from it carries; the coordinator refuses
// a message without one, so a missing or dead handler admits nobody.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>

#include <zmq.hpp>

#include "common/status.h"

namespace sublet::protocols {

inline constexpr size_t kCurveKeyChars = 40;  // Z85 of 32 bytes

struct CurveKeyPair {
  std::string public_key;  // Z85
  std::string secret_key;  // Z85
};

// A fresh key pair from libzmq's generator (libsodium underneath).
CurveKeyPair NewCurveKeyPair();

// `text`, trimmed of surrounding blanks, when it is a valid Z85 key;
// InvalidArgument naming `what` otherwise ("--coordinator-key: ...").
absl::StatusOr<std::string> ParseCurveKey(std::string_view text, std::string_view what);

// The public key of a secret key (both Z85).
absl::StatusOr<std::string> CurvePublicKey(const std::string& secret_key);

// Reads the key pair whose secret key is in `path`. FailedPrecondition when
// the file is readable by group or others, NotFound when it does not exist.
absl::StatusOr<CurveKeyPair> ReadKeyFile(const std::string& path);

// Reads `path`, or creates it (mode 0600, exclusively, so two starts cannot
// race to different keys) with a fresh secret key when it does not exist.
// `created`, when given, says which happened.
absl::StatusOr<CurveKeyPair> LoadOrCreateKeyFile(const std::string& path,
                                                 bool* created = nullptr);

// Writes `text` to `path` atomically (temp file + rename) with `mode`.
absl::Status WriteFileAtomically(const std::string& path, const std::string& text, int mode);

// What a ZAP request asks about one handshake.
struct ZapRequest {
  std::string mechanism;   // "NULL", "PLAIN" or "CURVE"
  std::string address;     // the peer's IP address
  std::string client_key;  // CURVE: the client's public key (Z85); else empty
};

// The User-Id to admit the connection with, or nullopt to refuse it.
using ZapPolicy = std::function<std::optional<std::string>(const ZapRequest&)>;

// Admits every CURVE client and labels it with its public key ("curve:<Z85>"),
// refuses everything else: what the coordinator uses (tenants authenticate
// with tokens inside the channel, workers by their listed keys).
std::optional<std::string> AdmitCurveClients(const ZapRequest& request);
inline constexpr std::string_view kCurveUserIdPrefix = "curve:";

class ZapHandler {
 public:
  // Binds inproc://zeromq.zap.01 in `context` (Unavailable when another
  // handler holds it) and serves until destroyed. `on_refused` is called on
  // the handler's thread for each refused handshake.
  static absl::StatusOr<std::unique_ptr<ZapHandler>> Start(
      zmq::context_t& context, ZapPolicy policy,
      std::function<void(const ZapRequest&)> on_refused = nullptr);
  ~ZapHandler();
  ZapHandler(const ZapHandler&) = delete;
  ZapHandler& operator=(const ZapHandler&) = delete;

 private:
  ZapHandler(ZapPolicy policy, std::function<void(const ZapRequest&)> on_refused);
  void Serve(zmq::socket_t& socket);

  ZapPolicy policy_;
  std::function<void(const ZapRequest&)> on_refused_;
  std::string stop_endpoint_;
  std::unique_ptr<zmq::socket_t> stop_sender_;
  std::thread thread_;
};

}  // namespace sublet::protocols

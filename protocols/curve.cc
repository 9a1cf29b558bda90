#include "protocols/curve.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <vector>

#include <fmt/format.h>
#include <zmq_addon.hpp>

#include "absl/strings/ascii.h"

namespace sublet::protocols {
namespace {

constexpr char kZapEndpoint[] = "inproc://zeromq.zap.01";

std::string Errno(const std::string& what) { return fmt::format("{}: {}", what, strerror(errno)); }

}  // namespace

CurveKeyPair NewCurveKeyPair() {
  char public_key[kCurveKeyChars + 1] = {};
  char secret_key[kCurveKeyChars + 1] = {};
  // Fails only when libzmq was built without CURVE, which Sublet's build
  // requires (Debian's libzmq has it).
  if (zmq_curve_keypair(public_key, secret_key) != 0) {
    throw std::runtime_error("libzmq has no CURVE support");
  }
  CurveKeyPair pair{public_key, secret_key};
  memset(secret_key, 0, sizeof(secret_key));
  return pair;
}

absl::StatusOr<std::string> ParseCurveKey(std::string_view text, std::string_view what) {
  std::string key(absl::StripAsciiWhitespace(absl::string_view(text.data(), text.size())));
  uint8_t raw[32];
  if (key.size() != kCurveKeyChars || zmq_z85_decode(raw, key.c_str()) == nullptr) {
    return absl::InvalidArgumentError(fmt::format(
        "{}: not a CURVE key (expected {} characters of Z85, got {} characters)", what,
        kCurveKeyChars, key.size()));
  }
  return key;
}

absl::StatusOr<std::string> CurvePublicKey(const std::string& secret_key) {
  SUBLET_ASSIGN_OR_RETURN(std::string secret, ParseCurveKey(secret_key, "secret key"));
  char public_key[kCurveKeyChars + 1] = {};
  if (zmq_curve_public(public_key, secret.c_str()) != 0) {
    return absl::InvalidArgumentError("secret key: libzmq cannot derive its public key");
  }
  return std::string(public_key);
}

absl::StatusOr<CurveKeyPair> ReadKeyFile(const std::string& path) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) {
    if (errno == ENOENT) return absl::NotFoundError(fmt::format("key file {} does not exist", path));
    return absl::FailedPreconditionError(Errno("key file " + path));
  }
  struct stat st {};
  std::string text(256, '\0');
  ssize_t n = -1;
  if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) n = read(fd, text.data(), text.size());
  close(fd);
  if (!S_ISREG(st.st_mode)) {
    return absl::FailedPreconditionError(fmt::format("key file {}: not a regular file", path));
  }
  if ((st.st_mode & 077) != 0) {
    return absl::FailedPreconditionError(fmt::format(
        "key file {}: readable by group or others (mode {:o}); chmod 600 it, and make a new "
        "key if others may have read it",
        path, st.st_mode & 0777));
  }
  if (n < 0) return absl::FailedPreconditionError(Errno("read key file " + path));
  text.resize(static_cast<size_t>(n));
  std::string first_line = text.substr(0, text.find('\n'));
  absl::StatusOr<std::string> secret = ParseCurveKey(first_line, "key file " + path);
  if (!secret.ok()) return secret.status();
  SUBLET_ASSIGN_OR_RETURN(std::string public_key, CurvePublicKey(*secret));
  return CurveKeyPair{public_key, *secret};
}

absl::StatusOr<CurveKeyPair> LoadOrCreateKeyFile(const std::string& path, bool* created) {
  if (created) *created = false;
  absl::StatusOr<CurveKeyPair> existing = ReadKeyFile(path);
  if (!absl::IsNotFound(existing.status())) return existing;
  CurveKeyPair pair = NewCurveKeyPair();
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) {
    if (errno == EEXIST) return ReadKeyFile(path);  // another start made it first
    return absl::FailedPreconditionError(Errno("create key file " + path));
  }
  const std::string line = pair.secret_key + "\n";
  bool ok = write(fd, line.data(), line.size()) == static_cast<ssize_t>(line.size()) &&
            fsync(fd) == 0;
  close(fd);
  if (!ok) {
    unlink(path.c_str());
    return absl::FailedPreconditionError(Errno("write key file " + path));
  }
  if (created) *created = true;
  return pair;
}

absl::Status WriteFileAtomically(const std::string& path, const std::string& text, int mode) {
  const std::string temp = path + ".tmp";
  unlink(temp.c_str());
  int fd = open(temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode);
  if (fd < 0) return absl::FailedPreconditionError(Errno("create " + temp));
  bool ok = write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()) &&
            fchmod(fd, static_cast<mode_t>(mode)) == 0 && fsync(fd) == 0;
  close(fd);
  if (!ok || rename(temp.c_str(), path.c_str()) != 0) {
    absl::Status failed = absl::FailedPreconditionError(Errno("write " + path));
    unlink(temp.c_str());
    return failed;
  }
  return absl::OkStatus();
}

std::optional<std::string> AdmitCurveClients(const ZapRequest& request) {
  if (request.mechanism != "CURVE" || request.client_key.empty()) return std::nullopt;
  return std::string(kCurveUserIdPrefix) + request.client_key;
}

// ---- ZapHandler ----------------------------------------------------------------

namespace {
std::atomic<uint64_t> g_next_handler{1};
}  // namespace

ZapHandler::ZapHandler(ZapPolicy policy, std::function<void(const ZapRequest&)> on_refused)
    : policy_(std::move(policy)), on_refused_(std::move(on_refused)) {}

absl::StatusOr<std::unique_ptr<ZapHandler>> ZapHandler::Start(
    zmq::context_t& context, ZapPolicy policy, std::function<void(const ZapRequest&)> on_refused) {
  std::unique_ptr<ZapHandler> handler(
      new ZapHandler(std::move(policy), std::move(on_refused)));
  // Bound here, on the caller's thread, so that a second handler in the same
  // context fails to start instead of silently not serving.
  auto socket = std::make_shared<zmq::socket_t>(context, zmq::socket_type::rep);
  auto stop_receiver = std::make_shared<zmq::socket_t>(context, zmq::socket_type::pair);
  socket->set(zmq::sockopt::linger, 0);
  handler->stop_endpoint_ = fmt::format("inproc://sublet-zap-stop-{}", g_next_handler++);
  try {
    socket->bind(kZapEndpoint);
    stop_receiver->bind(handler->stop_endpoint_);
    handler->stop_sender_ = std::make_unique<zmq::socket_t>(context, zmq::socket_type::pair);
    handler->stop_sender_->set(zmq::sockopt::linger, 0);
    handler->stop_sender_->connect(handler->stop_endpoint_);
  } catch (const zmq::error_t& e) {
    return absl::UnavailableError(
        fmt::format("cannot start the ZAP handler at {}: {}", kZapEndpoint, e.what()));
  }
  ZapHandler* self = handler.get();
  self->thread_ = std::thread([self, socket, stop_receiver] {
    zmq::pollitem_t items[2] = {{socket->handle(), 0, ZMQ_POLLIN, 0},
                                {stop_receiver->handle(), 0, ZMQ_POLLIN, 0}};
    while (true) {
      try {
        zmq::poll(items, 2, std::chrono::milliseconds(-1));
      } catch (const zmq::error_t& e) {
        if (e.num() == EINTR) continue;
        return;  // the context is closing
      }
      if (items[1].revents & ZMQ_POLLIN) return;
      if (items[0].revents & ZMQ_POLLIN) self->Serve(*socket);
    }
  });
  return handler;
}

ZapHandler::~ZapHandler() {
  if (stop_sender_) {
    try {
      stop_sender_->send(zmq::str_buffer("stop"), zmq::send_flags::dontwait);
    } catch (const zmq::error_t&) {
    }
  }
  if (thread_.joinable()) thread_.join();
}

// Answers one ZAP request (RFC 27): version, request id, domain, address,
// identity, mechanism, credentials; the reply carries the status and User-Id.
void ZapHandler::Serve(zmq::socket_t& socket) {
  std::vector<zmq::message_t> parts;
  try {
    if (!zmq::recv_multipart(socket, std::back_inserter(parts), zmq::recv_flags::dontwait)) return;
  } catch (const zmq::error_t&) {
    return;
  }
  std::string request_id = parts.size() > 1 ? parts[1].to_string() : "";
  std::optional<std::string> user_id;
  ZapRequest request;
  if (parts.size() >= 6 && parts[0].to_string_view() == "1.0") {
    request.address = parts[3].to_string();
    request.mechanism = parts[5].to_string();
    if (request.mechanism == "CURVE" && parts.size() == 7 && parts[6].size() == 32) {
      char z85[kCurveKeyChars + 1] = {};
      if (zmq_z85_encode(z85, static_cast<const uint8_t*>(parts[6].data()), 32) != nullptr) {
        request.client_key = z85;
      }
    }
    user_id = policy_(request);
  }
  if (!user_id && on_refused_) on_refused_(request);
  std::vector<std::string> reply = {"1.0", request_id, user_id ? "200" : "400",
                                    user_id ? "OK" : "refused", user_id.value_or(""), ""};
  try {
    for (size_t i = 0; i < reply.size(); ++i) {
      socket.send(zmq::buffer(reply[i]),
                  i + 1 < reply.size() ? zmq::send_flags::sndmore : zmq::send_flags::none);
    }
  } catch (const zmq::error_t&) {
  }
}

}  // namespace sublet::protocols

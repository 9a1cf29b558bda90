#include "collectives/internal/peer_auth.h"

#include <sodium.h>

#include <cstring>

#include "absl/strings/str_cat.h"
#include "collectives/internal/socket.h"
#include "common/status.h"

namespace sublet::collectives::internal {
namespace {

static_assert(kSecretBytes == crypto_auth_hmacsha256_KEYBYTES);
static_assert(kTagBytes == crypto_auth_hmacsha256_BYTES);

// Labels are prefix-free, so label || nonces || context parses one way only.
const char* Label(AuthPurpose purpose, bool connector) {
  if (purpose == AuthPurpose::kStore) {
    return connector ? "sublet/store/connector" : "sublet/store/acceptor";
  }
  return connector ? "sublet/mesh/connector" : "sublet/mesh/acceptor";
}

Tag Hmac(const PeerAuth& auth, const char* label, const Nonce& first, const Nonce& second) {
  crypto_auth_hmacsha256_state state;
  crypto_auth_hmacsha256_init(&state, reinterpret_cast<const unsigned char*>(auth.secret.data()),
                              auth.secret.size());
  crypto_auth_hmacsha256_update(&state, reinterpret_cast<const unsigned char*>(label),
                                strlen(label));
  crypto_auth_hmacsha256_update(&state, first.data(), first.size());
  crypto_auth_hmacsha256_update(&state, second.data(), second.size());
  crypto_auth_hmacsha256_update(&state, reinterpret_cast<const unsigned char*>(auth.context.data()),
                                auth.context.size());
  Tag tag;
  crypto_auth_hmacsha256_final(&state, tag.data());
  sodium_memzero(&state, sizeof(state));
  return tag;
}

absl::Status FailedChallenge(const std::string& what) {
  return absl::PermissionDeniedError(absl::StrCat(
      what, ": the peer failed the job-secret challenge (not a rank of this job attempt?)"));
}

}  // namespace

absl::Status SodiumReady() {
  static const int rc = sodium_init();  // 0 first time, 1 if already done, -1 on failure
  if (rc < 0) return absl::InternalError("libsodium: sodium_init failed");
  return absl::OkStatus();
}

absl::Status CheckSecretSize(std::string_view secret, const std::string& what) {
  if (secret.empty() || secret.size() == kSecretBytes) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat(what, ": the job secret must be ", kSecretBytes, " bytes, not ", secret.size()));
}

Nonce RandomNonce() {
  Nonce n;
  randombytes_buf(n.data(), n.size());
  return n;
}

Tag ConnectorTag(const PeerAuth& auth, const Nonce& ns, const Nonce& nc) {
  return Hmac(auth, Label(auth.purpose, true), ns, nc);
}

Tag AcceptorTag(const PeerAuth& auth, const Nonce& ns, const Nonce& nc) {
  return Hmac(auth, Label(auth.purpose, false), nc, ns);
}

bool TagMatches(const Tag& expected, const uint8_t* got) {
  return crypto_verify_32(expected.data(), got) == 0;
}

absl::Status ChallengeConnector(int fd, const PeerAuth& auth, absl::Time deadline) {
  SUBLET_RETURN_IF_ERROR(SodiumReady());
  const Nonce ns = RandomNonce();
  uint8_t challenge[kChallengeBytes];
  challenge[0] = kChallengeMarker;
  memcpy(challenge + 1, ns.data(), ns.size());
  SUBLET_RETURN_IF_ERROR(WriteFull(fd, challenge, sizeof(challenge), deadline, auth.what));
  uint8_t proof[kNonceBytes + kTagBytes];
  SUBLET_RETURN_IF_ERROR(ReadFull(fd, proof, sizeof(proof), deadline, auth.what));
  Nonce nc;
  memcpy(nc.data(), proof, nc.size());
  if (!TagMatches(ConnectorTag(auth, ns, nc), proof + kNonceBytes)) {
    return FailedChallenge(auth.what);
  }
  const Tag mine = AcceptorTag(auth, ns, nc);
  return WriteFull(fd, mine.data(), mine.size(), deadline, auth.what);
}

absl::Status AnswerChallenge(int fd, const PeerAuth& auth, std::string_view claim,
                             absl::Time deadline) {
  SUBLET_RETURN_IF_ERROR(SodiumReady());
  uint8_t challenge[kChallengeBytes];
  absl::Status got = ReadFull(fd, challenge, sizeof(challenge), deadline, auth.what);
  if (absl::IsDeadlineExceeded(got)) {
    return absl::DeadlineExceededError(
        absl::StrCat(auth.what,
                     ": timed out waiting for the job-secret challenge (does the peer run without "
                     "a job secret?)"));
  }
  SUBLET_RETURN_IF_ERROR(got);
  if (challenge[0] != kChallengeMarker) {
    return absl::PermissionDeniedError(absl::StrCat(
        auth.what, ": the peer sent no job-secret challenge (does it run without a job secret?)"));
  }
  Nonce ns, nc = RandomNonce();
  memcpy(ns.data(), challenge + 1, ns.size());
  const Tag proof = ConnectorTag(auth, ns, nc);
  std::string hello(claim);
  hello.append(reinterpret_cast<const char*>(nc.data()), nc.size());
  hello.append(reinterpret_cast<const char*>(proof.data()), proof.size());
  SUBLET_RETURN_IF_ERROR(WriteFull(fd, hello.data(), hello.size(), deadline, auth.what));
  uint8_t theirs[kTagBytes];
  got = ReadFull(fd, theirs, sizeof(theirs), deadline, auth.what);
  if (absl::IsUnavailable(got)) {
    return absl::PermissionDeniedError(
        absl::StrCat(auth.what,
                     ": the peer hung up on our job-secret proof (a different SUBLET_JOB_SECRET: "
                     "not a rank of the same job attempt?)"));
  }
  SUBLET_RETURN_IF_ERROR(got);
  if (!TagMatches(AcceptorTag(auth, ns, nc), theirs)) return FailedChallenge(auth.what);
  return absl::OkStatus();
}

}  // namespace sublet::collectives::internal

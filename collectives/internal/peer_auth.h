// Proof that the other end of a TCP connection holds the job attempt's secret
// (SUBLET_JOB_SECRET), without sending it: a mutual challenge-response with
// HMAC-SHA256 (libsodium). Used by the rendezvous store and the TCP mesh.
//
// Protocol, on an already-connected socket (K: the 32-byte secret; P: the
// purpose, "store" or "mesh"; C: context both ends know, never sent;
// A: bytes the connector announces in clear, "claim", which C covers):
//   1. acceptor -> connector: kChallengeMarker (1 byte) || Ns (32 random bytes)
//   2. connector -> acceptor: A || Nc (32 random bytes) ||
//        HMAC(K, "sublet/<P>/connector" || Ns || Nc || C)
//   3. the acceptor checks the tag in constant time; on a mismatch it closes
//      the connection without another byte. Otherwise:
//      acceptor -> connector: HMAC(K, "sublet/<P>/acceptor" || Nc || Ns || C)
//   4. the connector checks that tag in constant time.
// The labels differ per direction, so a tag cannot be reflected back, and per
// purpose, so a store proof is no mesh proof; fresh nonces on both sides make
// every tag single-use. The marker is no valid store reply code, so a client
// without a secret that meets a challenge can say so.
// What this does not do: encrypt or authenticate the bytes that follow (an
// attacker on the path can still read or inject them).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/time/time.h"

namespace sublet::collectives::internal {

inline constexpr size_t kSecretBytes = 32;
inline constexpr size_t kNonceBytes = 32;
inline constexpr size_t kTagBytes = 32;
inline constexpr uint8_t kChallengeMarker = 0xa7;
inline constexpr size_t kChallengeBytes = 1 + kNonceBytes;
// How long an acceptor waits for a connector's proof: short, so a stranger who
// connects and says nothing does not hold a slot for long.
inline constexpr absl::Duration kAcceptorHandshakeTimeout = absl::Seconds(10);

using Nonce = std::array<uint8_t, kNonceBytes>;
using Tag = std::array<uint8_t, kTagBytes>;

enum class AuthPurpose { kStore, kMesh };

// What both ends must agree on. `secret` is kSecretBytes raw bytes; `what`
// names the peer in errors ("rendezvous store at h:p"). Errors never contain
// the secret, nonces or tags.
struct PeerAuth {
  std::string_view secret;
  AuthPurpose purpose = AuthPurpose::kStore;
  std::string_view context;
  std::string what;
};

// Initialises libsodium once per process (thread-safe); Internal if it cannot.
// The functions below call it; the primitives assume it has succeeded.
absl::Status SodiumReady();
// InvalidArgument unless `secret` is empty or kSecretBytes long.
absl::Status CheckSecretSize(std::string_view secret, const std::string& what);

// Primitives, for an acceptor that multiplexes many handshakes (the mesh).
Nonce RandomNonce();
Tag ConnectorTag(const PeerAuth& auth, const Nonce& ns, const Nonce& nc);
Tag AcceptorTag(const PeerAuth& auth, const Nonce& ns, const Nonce& nc);
// Constant-time comparison of `expected` with kTagBytes at `got`.
bool TagMatches(const Tag& expected, const uint8_t* got);

// The acceptor's side (steps 1-3) over a blocking-with-deadline socket.
// PermissionDenied when the connector's proof is wrong (nothing more is
// sent), Unavailable / DeadlineExceeded when it goes away or stays silent.
absl::Status ChallengeConnector(int fd, const PeerAuth& auth, absl::Time deadline);

// The connector's side (steps 1, 2 and 4); `claim` is sent in clear in step 2.
// PermissionDenied when the acceptor sends no challenge, refuses our proof or
// cannot prove the secret itself.
absl::Status AnswerChallenge(int fd, const PeerAuth& auth, std::string_view claim,
                             absl::Time deadline);

}  // namespace sublet::collectives::internal

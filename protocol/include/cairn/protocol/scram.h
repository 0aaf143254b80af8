// SCRAM-SHA-256 (RFC 5802, RFC 7677): the password exchange of cairn's handshake
// (docs/security.md). Both ends are here, with no sockets: the client (libcairn) and the
// server (cairnd) each drive one state machine with the messages they receive.
//
// The cryptography is OpenSSL's (PBKDF2, HMAC, SHA-256, RAND_bytes, CRYPTO_memcmp); nothing
// here computes a hash by hand. Channel binding is not offered ("n,,": the gs2 header of a
// client that does not support it); TLS protects the exchange where it is on.
//
// Passwords are taken as given (UTF-8 bytes): SASLprep (RFC 4013) is not applied, so a
// password that differs only in Unicode normalization is a different password. User names
// are restricted (ValidUserName) so that they need no SASLname escaping beyond ',' and '='.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace cairn::scram {

inline constexpr std::string_view kMechanism = "SCRAM-SHA-256";
inline constexpr uint32_t kMinIterations = 4096;
inline constexpr uint32_t kDefaultIterations = 15000;
// The largest message either side accepts (a few hundred bytes in practice).
inline constexpr size_t kMaxMessage = 1024;

// What a server stores of a password (RFC 5802 section 3).
struct Credentials {
  std::string salt;        // raw bytes, >= 16
  uint32_t iterations = 0;  // >= kMinIterations
  std::string stored_key;  // raw 32 bytes: H(ClientKey)
  std::string server_key;  // raw 32 bytes: HMAC(SaltedPassword, "Server Key")
};

// 1 to 64 of letters, digits, '_', '-', '.', '@'.
bool ValidUserName(std::string_view name);

// Derives the credentials for `password` with a fresh random salt. Costs `iterations`
// PBKDF2 rounds (about 5 ms at the default): done once, by the client that sets a password.
// Throws std::runtime_error if OpenSSL fails (it does not for valid input), and
// std::invalid_argument for fewer than kMinIterations or an empty salt.
Credentials MakeCredentials(std::string_view password, uint32_t iterations = kDefaultIterations);
// The same with a given salt (tests, the RFC's vectors).
Credentials MakeCredentials(std::string_view password, std::string_view salt,
                            uint32_t iterations);

// Fresh random bytes (RAND_bytes), and base64 without line breaks.
std::string RandomBytes(size_t n);
std::string Base64(std::string_view bytes);
std::optional<std::string> Unbase64(std::string_view text);  // nullopt: not base64

// The client's side: Start() -> send; Challenge(server-first) -> send; Verify(server-final).
class Client {
 public:
  // `nonce`: empty for a random one (tests pass the RFC's).
  Client(std::string user, std::string password, std::string nonce = {});
  std::string Start();  // client-first-message
  // client-final-message, or nullopt with *error set (malformed message, a nonce that does
  // not extend ours, too few iterations).
  std::optional<std::string> Challenge(std::string_view server_first, std::string* error);
  // Whether the server proved it knows the credentials (server-final "v=...").
  bool Verify(std::string_view server_final, std::string* error);

 private:
  std::string user_, password_, nonce_;
  std::string client_first_bare_, auth_message_, server_key_;
};

// The server's side of one exchange: Receive(client-first) names the user; the caller
// looks the user up and calls Challenge; Finish(client-final) checks the proof.
class Server {
 public:
  // `secret`: a per-server random key from which mock salts for unknown users are derived
  // (HMAC(secret, user)), so that an unknown user's exchange looks like a known one's, with
  // a salt stable across attempts, and always fails. `nonce`: empty for a random one.
  Server(std::string secret, uint32_t mock_iterations, std::string nonce = {});

  // Takes the client-first-message. Returns the user it names, or nullopt with *error set
  // (malformed; channel binding asked for; an invalid user name).
  std::optional<std::string> Receive(std::string_view client_first, std::string* error);
  // The server-first-message, for the user's credentials (nullopt: no such user; the
  // exchange goes on with mock credentials and fails at Finish). REQUIRES: Receive succeeded.
  std::string Challenge(const std::optional<Credentials>& credentials);
  // Takes the client-final-message. Returns the server-final-message if the proof is right
  // (constant-time comparison), or nullopt with *error set: "wrong password or unknown
  // user" for both, so that the two cannot be told apart. Once only: a second call fails.
  std::optional<std::string> Finish(std::string_view client_final, std::string* error);

  const std::string& user() const { return user_; }  // as the client named it

 private:
  std::string secret_, nonce_;
  uint32_t mock_iterations_;
  std::string user_;
  std::optional<Credentials> credentials_;  // nullopt: unknown user (mock exchange)
  Credentials mock_;
  std::string gs2_header_;  // "n,," or "y,,": what the client-final's "c=" must encode
  std::string client_first_bare_, server_first_;
  bool started_ = false, finished_ = false;
};

// Parsing, exposed for the tests and the fuzzer. Each returns nullopt on malformed input.
struct ClientFirst {
  std::string user;   // decoded (=2C, =3D)
  std::string nonce;
  std::string bare;   // client-first-message-bare
};
std::optional<ClientFirst> ParseClientFirst(std::string_view message);
struct ServerFirst {
  std::string nonce, salt;  // salt decoded
  uint32_t iterations = 0;
};
std::optional<ServerFirst> ParseServerFirst(std::string_view message);
struct ClientFinal {
  std::string channel_binding;  // decoded
  std::string nonce;
  std::string proof;            // decoded
  std::string without_proof;    // client-final-message-without-proof
};
std::optional<ClientFinal> ParseClientFinal(std::string_view message);
// The server signature from "v=...", or nullopt ("e=..." or malformed).
std::optional<std::string> ParseServerFinal(std::string_view message);

}  // namespace cairn::scram

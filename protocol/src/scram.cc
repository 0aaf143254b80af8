// SCRAM-SHA-256 (RFC 5802, RFC 7677) on OpenSSL 3's primitives: the message parsers and
// both ends of the exchange (scram.h, docs/security.md "SCRAM-SHA-256").
#include "cairn/protocol/scram.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/rand.h>

#include <climits>
#include <stdexcept>
#include <vector>

namespace cairn::scram {

namespace {

constexpr size_t kKeySize = 32;  // SHA-256
constexpr size_t kSaltSize = 16;
constexpr size_t kNonceBytes = 18;  // 24 base64 characters
// A server that asks for more than this would make the client spend seconds per
// connection (about 0.25 us per iteration here): the client refuses it.
constexpr uint32_t kMaxIterations = 10'000'000;
constexpr std::string_view kWrongProof = "wrong password or unknown user";

// --- OpenSSL primitives.

[[noreturn]] void OpenSslFailed(const char* what) {
  throw std::runtime_error(std::string("OpenSSL: ") + what + " failed");
}

EVP_MAC* HmacAlgorithm() {
  // Fetched once: EVP_MAC is reference counted and may be shared by threads, each with
  // contexts of its own.
  static EVP_MAC* mac = [] {
    EVP_MAC* m = EVP_MAC_fetch(nullptr, "HMAC", nullptr);
    if (!m) OpenSslFailed("EVP_MAC_fetch(HMAC)");
    return m;
  }();
  return mac;
}

std::string Hmac(std::string_view key, std::string_view data) {
  EVP_MAC_CTX* ctx = EVP_MAC_CTX_new(HmacAlgorithm());
  if (!ctx) OpenSslFailed("EVP_MAC_CTX_new");
  char digest[] = "SHA256";
  OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
                         OSSL_PARAM_construct_end()};
  // HMAC allows an empty key; OpenSSL wants a non-null pointer for it.
  static const unsigned char kEmpty[1] = {0};
  const auto* k = key.empty() ? kEmpty : reinterpret_cast<const unsigned char*>(key.data());
  std::string out(kKeySize, '\0');
  size_t len = 0;
  bool ok = EVP_MAC_init(ctx, k, key.size(), params) == 1 &&
            EVP_MAC_update(ctx, reinterpret_cast<const unsigned char*>(data.data()),
                           data.size()) == 1 &&
            EVP_MAC_final(ctx, reinterpret_cast<unsigned char*>(out.data()), &len,
                          out.size()) == 1 &&
            len == kKeySize;
  EVP_MAC_CTX_free(ctx);
  if (!ok) OpenSslFailed("HMAC-SHA-256");
  return out;
}

std::string Sha256(std::string_view data) {
  std::string out(kKeySize, '\0');
  unsigned int len = 0;
  if (EVP_Digest(data.data(), data.size(), reinterpret_cast<unsigned char*>(out.data()), &len,
                 EVP_sha256(), nullptr) != 1 ||
      len != kKeySize) {
    OpenSslFailed("SHA-256");
  }
  return out;
}

std::string SaltedPassword(std::string_view password, std::string_view salt,
                           uint32_t iterations) {
  if (password.size() > INT_MAX || salt.size() > INT_MAX || iterations > INT_MAX) {
    throw std::invalid_argument("SCRAM: password, salt or iteration count too large");
  }
  std::string out(kKeySize, '\0');
  if (PKCS5_PBKDF2_HMAC(password.data(), int(password.size()),
                        reinterpret_cast<const unsigned char*>(salt.data()), int(salt.size()),
                        int(iterations), EVP_sha256(), int(out.size()),
                        reinterpret_cast<unsigned char*>(out.data())) != 1) {
    OpenSslFailed("PBKDF2-HMAC-SHA-256");
  }
  return out;
}

bool Equal(std::string_view a, std::string_view b) {
  return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

std::string Xor(std::string_view a, std::string_view b) {
  std::string out(a);
  for (size_t i = 0; i < out.size() && i < b.size(); i++) out[i] = char(out[i] ^ b[i]);
  return out;
}

// Overwrites a secret before its memory is given back.
void Wipe(std::string& s) {
  if (!s.empty()) OPENSSL_cleanse(s.data(), s.size());
  s.clear();
}

// --- The grammar of RFC 5802 section 7.

// printable = %x21-2B / %x2D-7E: printable ASCII but ','.
bool Printable(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (c < 0x21 || c > 0x7E || c == ',') return false;
  }
  return true;
}

bool IsAlpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }

// The fields of a message between commas; nullopt if one is empty (",," or a comma at
// either end).
std::optional<std::vector<std::string_view>> Fields(std::string_view message) {
  std::vector<std::string_view> out;
  while (true) {
    size_t comma = message.find(',');
    std::string_view field = message.substr(0, comma);
    if (field.empty()) return std::nullopt;
    out.push_back(field);
    if (comma == std::string_view::npos) return out;
    message.remove_prefix(comma + 1);
  }
}

// "x=value" with the attribute `attr`: the value (which must not be empty).
std::optional<std::string_view> Attribute(std::string_view field, char attr) {
  if (field.size() < 3 || field[0] != attr || field[1] != '=') return std::nullopt;
  return field.substr(2);
}

// An optional extension (attr-val, RFC 5802 section 7): a letter, '=', and a value. Not
// "m" (a mandatory extension, which we do not know) nor another attribute the RFC defines
// (a second nonce is not an extension). We know of no optional extension and ignore them;
// their values must be printable ASCII.
bool Extension(std::string_view field) {
  constexpr std::string_view kDefined = "acceimnprsv";
  return field.size() >= 3 && IsAlpha(field[0]) &&
         kDefined.find(field[0]) == std::string_view::npos && field[1] == '=' &&
         Printable(field.substr(2));
}

// posit-number = %x31-39 *DIGIT, in a uint32.
std::optional<uint32_t> PositiveNumber(std::string_view s) {
  if (s.empty() || s[0] < '1' || s[0] > '9') return std::nullopt;
  uint64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return std::nullopt;
    v = v * 10 + uint64_t(c - '0');
    if (v > UINT32_MAX) return std::nullopt;
  }
  return uint32_t(v);
}

// saslname: '=' only as "=2C" (',') or "=3D" ('=').
std::optional<std::string> DecodeName(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); i++) {
    if (s[i] == '=') {
      std::string_view esc = s.substr(i + 1, 2);
      if (esc == "2C") {
        out += ',';
      } else if (esc == "3D") {
        out += '=';
      } else {
        return std::nullopt;
      }
      i += 2;
    } else if (s[i] == ',' || s[i] == '\0') {
      return std::nullopt;
    } else {
      out += s[i];
    }
  }
  return out;
}

std::string EncodeName(std::string_view s) {
  std::string out;
  for (char c : s) {
    if (c == ',') {
      out += "=2C";
    } else if (c == '=') {
      out += "=3D";
    } else {
      out += c;
    }
  }
  return out;
}

bool IsBase64Char(char c) {
  return IsAlpha(c) || (c >= '0' && c <= '9') || c == '+' || c == '/';
}

}  // namespace

bool ValidUserName(std::string_view name) {
  if (name.empty() || name.size() > 64) return false;
  for (char c : name) {
    bool ok = IsAlpha(c) || (c >= '0' && c <= '9') || c == '_' || c == '-' || c == '.' ||
              c == '@';
    if (!ok) return false;
  }
  return true;
}

std::string RandomBytes(size_t n) {
  std::string out(n, '\0');
  if (n > INT_MAX || (n > 0 && RAND_bytes(reinterpret_cast<unsigned char*>(out.data()),
                                          int(n)) != 1)) {
    OpenSslFailed("RAND_bytes");
  }
  return out;
}

std::string Base64(std::string_view bytes) {
  if (bytes.size() > (INT_MAX / 4) * 3) throw std::invalid_argument("Base64: too large");
  std::string out(4 * ((bytes.size() + 2) / 3) + 1, '\0');
  int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(bytes.data()),
                          int(bytes.size()));
  out.resize(size_t(n));
  return out;
}

std::optional<std::string> Unbase64(std::string_view text) {
  // EVP_DecodeBlock skips white space at either end, decodes padding as zero bytes (which
  // it counts) and does not check that the bits after the last byte are zero: so the text
  // is checked here first, and what it decodes to must encode back to the same text (one
  // spelling per byte string).
  if (text.size() % 4 != 0 || text.size() > INT_MAX) return std::nullopt;
  size_t pad = 0;
  while (pad < 2 && pad < text.size() && text[text.size() - 1 - pad] == '=') pad++;
  for (size_t i = 0; i < text.size() - pad; i++) {
    if (!IsBase64Char(text[i])) return std::nullopt;
  }
  if (text.empty()) return std::string();
  std::string out(text.size() / 4 * 3, '\0');
  int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(text.data()), int(text.size()));
  if (n < 0 || size_t(n) != out.size()) return std::nullopt;
  out.resize(out.size() - pad);
  if (Base64(out) != text) return std::nullopt;
  return out;
}

Credentials MakeCredentials(std::string_view password, uint32_t iterations) {
  return MakeCredentials(password, RandomBytes(kSaltSize), iterations);
}

Credentials MakeCredentials(std::string_view password, std::string_view salt,
                            uint32_t iterations) {
  if (iterations < kMinIterations) {
    throw std::invalid_argument("SCRAM: at least " + std::to_string(kMinIterations) +
                                " iterations");
  }
  if (salt.empty()) throw std::invalid_argument("SCRAM: an empty salt");
  std::string salted = SaltedPassword(password, salt, iterations);
  std::string client_key = Hmac(salted, "Client Key");
  Credentials c;
  c.salt = std::string(salt);
  c.iterations = iterations;
  c.stored_key = Sha256(client_key);
  c.server_key = Hmac(salted, "Server Key");
  Wipe(salted);
  Wipe(client_key);
  return c;
}

// --- Parsers.

std::optional<ClientFirst> ParseClientFirst(std::string_view message) {
  if (message.size() > kMaxMessage) return std::nullopt;
  // gs2-header: "n,," (no channel binding) or "y,," (the client could bind but thinks we
  // cannot); no authzid. "p=..." asks for channel binding, which we do not offer.
  if (!message.starts_with("n,,") && !message.starts_with("y,,")) return std::nullopt;
  std::string_view bare = message.substr(3);
  auto fields = Fields(bare);
  if (!fields || fields->size() < 2) return std::nullopt;
  auto name = Attribute((*fields)[0], 'n');  // a leading "m=" is not "n=": refused
  auto nonce = Attribute((*fields)[1], 'r');
  if (!name || !nonce || !Printable(*nonce)) return std::nullopt;
  for (size_t i = 2; i < fields->size(); i++) {
    if (!Extension((*fields)[i])) return std::nullopt;
  }
  std::optional<std::string> user = DecodeName(*name);
  if (!user || !ValidUserName(*user)) return std::nullopt;
  return ClientFirst{std::move(*user), std::string(*nonce), std::string(bare)};
}

std::optional<ServerFirst> ParseServerFirst(std::string_view message) {
  if (message.size() > kMaxMessage) return std::nullopt;
  auto fields = Fields(message);
  if (!fields || fields->size() < 3) return std::nullopt;
  auto nonce = Attribute((*fields)[0], 'r');
  auto salt = Attribute((*fields)[1], 's');
  auto count = Attribute((*fields)[2], 'i');
  if (!nonce || !salt || !count || !Printable(*nonce)) return std::nullopt;
  for (size_t i = 3; i < fields->size(); i++) {
    if (!Extension((*fields)[i])) return std::nullopt;
  }
  std::optional<std::string> raw_salt = Unbase64(*salt);
  std::optional<uint32_t> iterations = PositiveNumber(*count);
  if (!raw_salt || raw_salt->empty() || !iterations) return std::nullopt;
  return ServerFirst{std::string(*nonce), std::move(*raw_salt), *iterations};
}

std::optional<ClientFinal> ParseClientFinal(std::string_view message) {
  if (message.size() > kMaxMessage) return std::nullopt;
  auto fields = Fields(message);
  if (!fields || fields->size() < 3) return std::nullopt;
  auto binding = Attribute((*fields)[0], 'c');
  auto nonce = Attribute((*fields)[1], 'r');
  auto proof = Attribute(fields->back(), 'p');
  if (!binding || !nonce || !proof || !Printable(*nonce)) return std::nullopt;
  for (size_t i = 2; i + 1 < fields->size(); i++) {
    if (!Extension((*fields)[i])) return std::nullopt;
  }
  std::optional<std::string> cb = Unbase64(*binding);
  std::optional<std::string> raw_proof = Unbase64(*proof);
  if (!cb || !raw_proof || raw_proof->empty()) return std::nullopt;
  // Everything before ",p=": the proof is the last field.
  std::string_view without = message.substr(0, message.size() - fields->back().size() - 1);
  return ClientFinal{std::move(*cb), std::string(*nonce), std::move(*raw_proof),
                     std::string(without)};
}

std::optional<std::string> ParseServerFinal(std::string_view message) {
  if (message.size() > kMaxMessage) return std::nullopt;
  auto fields = Fields(message);
  if (!fields) return std::nullopt;
  auto verifier = Attribute((*fields)[0], 'v');
  if (!verifier) return std::nullopt;
  for (size_t i = 1; i < fields->size(); i++) {
    if (!Extension((*fields)[i])) return std::nullopt;
  }
  std::optional<std::string> signature = Unbase64(*verifier);
  if (!signature || signature->empty()) return std::nullopt;
  return signature;
}

// --- The client.

Client::Client(std::string user, std::string password, std::string nonce)
    : user_(std::move(user)), password_(std::move(password)), nonce_(std::move(nonce)) {
  if (nonce_.empty()) nonce_ = Base64(RandomBytes(kNonceBytes));
}

std::string Client::Start() {
  client_first_bare_ = "n=" + EncodeName(user_) + ",r=" + nonce_;
  auth_message_.clear();
  server_key_.clear();
  return "n,," + client_first_bare_;
}

std::optional<std::string> Client::Challenge(std::string_view server_first, std::string* error) {
  auto fail = [&](std::string why) -> std::optional<std::string> {
    if (error) *error = std::move(why);
    return std::nullopt;
  };
  if (client_first_bare_.empty()) return fail("the exchange has not started");
  if (!auth_message_.empty()) return fail("a second challenge");
  std::optional<ServerFirst> sf = ParseServerFirst(server_first);
  if (!sf) return fail("a malformed server-first-message");
  if (sf->nonce.size() <= nonce_.size() || !sf->nonce.starts_with(nonce_)) {
    return fail("the server's nonce does not extend the client's");
  }
  if (sf->iterations < kMinIterations) {
    return fail("the server asks for " + std::to_string(sf->iterations) +
                " iterations, fewer than the least accepted (" +
                std::to_string(kMinIterations) + ")");
  }
  if (sf->iterations > kMaxIterations) {
    return fail("the server asks for " + std::to_string(sf->iterations) +
                " iterations, more than the most accepted (" +
                std::to_string(kMaxIterations) + ")");
  }
  if (sf->salt.size() < kSaltSize) return fail("the server's salt is shorter than 16 bytes");

  std::string without_proof = "c=biws,r=" + sf->nonce;
  auth_message_ = client_first_bare_ + "," + std::string(server_first) + "," + without_proof;
  std::string salted = SaltedPassword(password_, sf->salt, sf->iterations);
  std::string client_key = Hmac(salted, "Client Key");
  std::string stored_key = Sha256(client_key);
  std::string signature = Hmac(stored_key, auth_message_);
  std::string proof = Xor(client_key, signature);
  server_key_ = Hmac(salted, "Server Key");
  Wipe(salted);
  Wipe(client_key);
  return without_proof + ",p=" + Base64(proof);
}

bool Client::Verify(std::string_view server_final, std::string* error) {
  auto fail = [&](std::string why) {
    if (error) *error = std::move(why);
    return false;
  };
  if (server_key_.empty()) return fail("no challenge was answered");
  std::string key = std::move(server_key_);
  server_key_.clear();  // once only
  if (server_final.starts_with("e=")) {
    std::string_view what = server_final.substr(2, 200);
    return fail("the server refused: " + std::string(what.substr(0, what.find(','))));
  }
  std::optional<std::string> signature = ParseServerFinal(server_final);
  if (!signature) return fail("a malformed server-final-message");
  std::string expected = Hmac(key, auth_message_);
  Wipe(key);
  if (!Equal(*signature, expected)) return fail("the server's signature is wrong");
  return true;
}

// --- The server.

Server::Server(std::string secret, uint32_t mock_iterations, std::string nonce)
    : secret_(std::move(secret)), nonce_(std::move(nonce)), mock_iterations_(mock_iterations) {
  if (nonce_.empty()) nonce_ = Base64(RandomBytes(kNonceBytes));
}

std::optional<std::string> Server::Receive(std::string_view client_first, std::string* error) {
  auto fail = [&](std::string why) -> std::optional<std::string> {
    if (error) *error = std::move(why);
    return std::nullopt;
  };
  if (!client_first_bare_.empty()) return fail("a second client-first-message");
  if (client_first.starts_with("p=")) return fail("channel binding is not offered");
  if (client_first.size() > kMaxMessage) return fail("the client-first-message is too long");
  std::optional<ClientFirst> cf = ParseClientFirst(client_first);
  if (!cf) {
    // Which part was wrong, for the client's error (nothing here depends on the users).
    std::string_view bare = client_first.size() >= 3 ? client_first.substr(3) : "";
    if (bare.starts_with("m=")) return fail("an unknown mandatory extension");
    if (bare.starts_with("n=")) {
      std::string_view rest = bare.substr(2);
      std::optional<std::string> decoded = DecodeName(rest.substr(0, rest.find(',')));
      if (decoded && !ValidUserName(*decoded)) {
        return fail("an invalid user name (1 to 64 letters, digits, '_', '-', '.', '@')");
      }
    }
    return fail("a malformed client-first-message");
  }
  gs2_header_ = std::string(client_first.substr(0, 3));
  client_first_bare_ = std::move(cf->bare);
  user_ = std::move(cf->user);
  nonce_ = cf->nonce + nonce_;
  return user_;
}

std::string Server::Challenge(const std::optional<Credentials>& credentials) {
  if (client_first_bare_.empty()) return {};  // Receive did not succeed: Finish will fail
  if (started_) return server_first_;
  started_ = true;
  credentials_ = credentials;
  // An unknown user gets what a known one would: a salt of its own, the same at every
  // attempt (derived from the server's secret), and the usual iteration count; Finish
  // fails for it as for a wrong password. The mock is derived for known users too, so
  // that both take the same time here.
  mock_.salt = Hmac(secret_, "salt" + user_).substr(0, kSaltSize);
  mock_.iterations = mock_iterations_;
  mock_.stored_key = Hmac(secret_, "stored key" + user_);
  mock_.server_key.clear();  // never used: the exchange fails before
  const Credentials& c = credentials_ ? *credentials_ : mock_;
  server_first_ = "r=" + nonce_ + ",s=" + Base64(c.salt) + ",i=" + std::to_string(c.iterations);
  return server_first_;
}

std::optional<std::string> Server::Finish(std::string_view client_final, std::string* error) {
  auto fail = [&](std::string why) -> std::optional<std::string> {
    if (error) *error = std::move(why);
    return std::nullopt;
  };
  if (!started_) return fail("no challenge was sent");
  if (finished_) return fail("the exchange is over");
  finished_ = true;
  std::optional<ClientFinal> cf = ParseClientFinal(client_final);
  if (!cf) return fail("a malformed client-final-message");
  if (cf->channel_binding != gs2_header_) return fail("the channel binding does not match");
  if (cf->nonce != nonce_) return fail("the nonce is not this exchange's");
  if (cf->proof.size() != kKeySize) return fail("a proof that is not 32 bytes");

  // The same work for a known and an unknown user, and one constant-time comparison.
  const Credentials& c = credentials_ ? *credentials_ : mock_;
  std::string auth_message = client_first_bare_ + "," + server_first_ + "," + cf->without_proof;
  std::string signature = Hmac(c.stored_key, auth_message);
  std::string client_key = Xor(cf->proof, signature);
  bool match = Equal(Sha256(client_key), c.stored_key);
  Wipe(client_key);
  if (!match || !credentials_) return fail(std::string(kWrongProof));
  return "v=" + Base64(Hmac(c.server_key, auth_message));
}

}  // namespace cairn::scram

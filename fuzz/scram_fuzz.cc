// libFuzzer harness for the SCRAM-SHA-256 messages (protocol/include/cairn/protocol/scram.h):
// the bytes go to the four parsers and the base64 decoder, then to a server's exchange,
// split in two at a byte the input chooses (client-first, then client-final), against a
// known user's credentials or an unknown user's mock ones.
//
// Checked besides "no crash, no sanitizer report": what a parser accepts is consistent
// (a decoded name is a valid user name, base64 decodes and encodes back to itself, the
// client-final's parts are prefixes of the message), and an unknown user never passes.
//
// The client's Challenge is not fed here: it costs PBKDF2 at whatever iteration count
// the input names (up to 10 million), which would make the fuzzer crawl; its parser is.
//
// Built and run with the others (fuzz/CMakeLists.txt, scripts/fuzz.sh).
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "cairn/protocol/scram.h"

namespace {

using namespace cairn::scram;

void Check(bool ok) {
  if (!ok) std::abort();
}

const Credentials& Known() {
  // RFC 7677's user: "pencil" with its salt, computed once.
  static const Credentials c = MakeCredentials("pencil", *Unbase64("W22ZaJ0SNY7soEsUEjb6gQ=="), 4096);
  return c;
}

void Parsers(std::string_view in) {
  if (auto cf = ParseClientFirst(in)) {
    Check(ValidUserName(cf->user));
    Check(in.size() <= kMaxMessage && in.substr(3) == cf->bare);
  }
  if (auto sf = ParseServerFirst(in)) Check(!sf->salt.empty() && sf->iterations > 0);
  if (auto cf = ParseClientFinal(in)) {
    Check(in.starts_with(cf->without_proof));
    Check(in.substr(cf->without_proof.size()).starts_with(",p="));
  }
  if (auto sig = ParseServerFinal(in)) Check(!sig->empty());
  if (auto bytes = Unbase64(in)) Check(Base64(*bytes) == in);
}

void Exchange(std::string_view in) {
  if (in.empty()) return;
  size_t split = 1 + (static_cast<uint8_t>(in[0]) % in.size());
  std::string_view first = in.substr(1, split - 1), final = in.substr(std::min(split, in.size()));
  // A fixed server nonce, so that an input replays the same exchange.
  Server server("fuzz secret", 4096, "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0");
  std::string error;
  std::optional<std::string> user = server.Receive(first, &error);
  if (!user) {
    Check(!error.empty());
    Check(server.Finish(final, &error) == std::nullopt);
    return;
  }
  Check(ValidUserName(*user));
  bool known = *user == "user";
  std::string challenge = server.Challenge(known ? std::optional(Known()) : std::nullopt);
  Check(ParseServerFirst(challenge).has_value());
  std::optional<std::string> ok = server.Finish(final, &error);
  Check(ok || !error.empty());
  if (!known) Check(!ok);
  if (ok) Check(ParseServerFinal(*ok).has_value());
  Check(!server.Finish(final, &error));  // once only
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  Parsers(in);
  Exchange(in);
  return 0;
}

// scram_bench: what SCRAM-SHA-256 costs (docs/security.md, "SCRAM-SHA-256"): deriving a
// password's credentials (MakeCredentials: PBKDF2, done when a password is set), the
// client's side of one exchange (PBKDF2 again, once per connection), the server's side
// (no PBKDF2: HMACs and a hash), and a whole exchange, at 4096 and 15000 iterations.
#include <benchmark/benchmark.h>

#include "cairn/protocol/scram.h"

namespace {

using namespace cairn::scram;

void BM_MakeCredentials(benchmark::State& state) {
  uint32_t iterations = uint32_t(state.range(0));
  for (auto _ : state) benchmark::DoNotOptimize(MakeCredentials("correct horse", iterations));
}
BENCHMARK(BM_MakeCredentials)->Arg(4096)->Arg(15000)->Unit(benchmark::kMillisecond);

// One whole exchange, both sides, with random nonces.
void BM_Exchange(benchmark::State& state) {
  Credentials creds = MakeCredentials("correct horse", uint32_t(state.range(0)));
  for (auto _ : state) {
    Client client("alice", "correct horse");
    Server server("secret", kDefaultIterations);
    std::string error;
    server.Receive(client.Start(), &error);
    std::optional<std::string> final = client.Challenge(server.Challenge(creds), &error);
    std::optional<std::string> server_final = server.Finish(*final, &error);
    if (!server_final || !client.Verify(*server_final, &error)) state.SkipWithError("failed");
  }
}
BENCHMARK(BM_Exchange)->Arg(4096)->Arg(15000)->Unit(benchmark::kMillisecond);

// Each side alone: with fixed nonces, the other side's messages are the same every time.
constexpr const char* kClientNonce = "fixedclientnonce";
constexpr const char* kServerNonce = "fixedservernonce";

void BM_ExchangeClientSide(benchmark::State& state) {
  Credentials creds = MakeCredentials("correct horse", uint32_t(state.range(0)));
  Client probe("alice", "correct horse", kClientNonce);
  Server server("secret", kDefaultIterations, kServerNonce);
  std::string error;
  server.Receive(probe.Start(), &error);
  std::string challenge = server.Challenge(creds);
  std::string server_final = *server.Finish(*probe.Challenge(challenge, &error), &error);
  for (auto _ : state) {
    Client client("alice", "correct horse", kClientNonce);
    client.Start();
    benchmark::DoNotOptimize(client.Challenge(challenge, &error));
    if (!client.Verify(server_final, &error)) state.SkipWithError("failed");
  }
}
BENCHMARK(BM_ExchangeClientSide)->Arg(4096)->Arg(15000)->Unit(benchmark::kMillisecond);

void BM_ExchangeServerSide(benchmark::State& state) {
  Credentials creds = MakeCredentials("correct horse", uint32_t(state.range(0)));
  Client client("alice", "correct horse", kClientNonce);
  std::string first = client.Start(), error;
  Server probe("secret", kDefaultIterations, kServerNonce);
  probe.Receive(first, &error);
  std::string final = *client.Challenge(probe.Challenge(creds), &error);
  for (auto _ : state) {
    Server server("secret", kDefaultIterations, kServerNonce);
    server.Receive(first, &error);
    benchmark::DoNotOptimize(server.Challenge(creds));
    if (!server.Finish(final, &error)) state.SkipWithError("failed");
  }
}
BENCHMARK(BM_ExchangeServerSide)->Arg(4096)->Arg(15000)->Unit(benchmark::kMicrosecond);

// A failing exchange on the server, for a known user (wrong password) and an unknown one
// (mock credentials): the two should cost the same.
void ServerSideFailure(benchmark::State& state, bool known) {
  Credentials creds = MakeCredentials("correct horse", kDefaultIterations);
  Client client(known ? "alice" : "mallory", "guess", kClientNonce);
  std::string first = client.Start(), error;
  Server probe("secret", kDefaultIterations, kServerNonce);
  probe.Receive(first, &error);
  std::optional<Credentials> c = known ? std::optional(creds) : std::nullopt;
  std::string final = *client.Challenge(probe.Challenge(c), &error);
  for (auto _ : state) {
    Server server("secret", kDefaultIterations, kServerNonce);
    server.Receive(first, &error);
    benchmark::DoNotOptimize(server.Challenge(c));
    if (server.Finish(final, &error)) state.SkipWithError("passed");
  }
}
void BM_ServerSideWrongPassword(benchmark::State& state) { ServerSideFailure(state, true); }
void BM_ServerSideUnknownUser(benchmark::State& state) { ServerSideFailure(state, false); }
BENCHMARK(BM_ServerSideWrongPassword)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_ServerSideUnknownUser)->Unit(benchmark::kMicrosecond);

}  // namespace

BENCHMARK_MAIN();

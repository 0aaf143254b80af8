// TLS against the real cairnd with a test PKI made at test time (test_certs.h): good and
// bad certificates as libcairn sees them, mutual TLS, a plaintext client on the TLS port
// and a TLS client on a plaintext one, rotation on SIGHUP, and peers that misbehave
// around the handshake and the close (a raw OpenSSL client).
#include <gtest/gtest.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <signal.h>

#include <filesystem>
#include <thread>

#include "cairn/client/client.h"
#include "command.h"
#include "server_process.h"
#include "test_certs.h"

namespace cairn {
namespace {

using namespace testing;
using client::Client;
using client::ClientOptions;
using client::Document;
using client::Error;
using client::ErrorCode;
using Clock = std::chrono::steady_clock;

const TestCerts& Certs() {
  static const TestCerts* certs = new TestCerts();
  return *certs;
}

std::vector<std::string> TlsFlags(const TestCerts::Pair& server,
                                  std::vector<std::string> more = {}) {
  std::vector<std::string> f = {"--tls-cert", server.cert, "--tls-key", server.key,
                                "--hello-timeout", "2", "--log-level", "debug"};
  f.insert(f.end(), more.begin(), more.end());
  return f;
}

ClientOptions Options(uint16_t port, const std::string& ca, std::string host = "127.0.0.1") {
  ClientOptions o;
  o.address = host + ":" + std::to_string(port);
  o.tls = true;
  o.tls_ca = ca;
  o.connections = 1;
  o.max_attempts = 1;
  o.connect_timeout = std::chrono::milliseconds(3000);
  o.timeout = std::chrono::milliseconds(5000);
  return o;
}

// A round trip that writes and reads back.
void RoundTrip(Client& c, const std::string& key) {
  try {
    c.CreateCollection("t");
  } catch (const Error& e) {
    if (e.code() != ErrorCode::kAlreadyExists) throw;
  }
  c.Put("t", key, Document::FromJson(R"({"v": 1})"));
  client::Txn txn;
  txn.Get("t", key);
  client::TxnResult r = c.Commit(txn);
  ASSERT_EQ(r.results.size(), 1u);
  EXPECT_TRUE(r.results[0].found);
}

// The error Connect fails with (empty message if it succeeded).
Error ConnectError(const ClientOptions& o) {
  try {
    Client::Connect(o);
  } catch (const Error& e) {
    return e;
  }
  return Error(ErrorCode::kInternal, "");
}

uint64_t Counter(Client& c, const std::string& name) {
  for (auto& [n, v] : c.Stats().counters) {
    if (n == name) return v;
  }
  ADD_FAILURE() << "no counter " << name;
  return 0;
}

bool WaitFor(const std::function<bool()>& f, std::chrono::milliseconds limit) {
  auto deadline = Clock::now() + limit;
  while (Clock::now() < deadline) {
    if (f()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return f();
}

// A blocking TLS client of OpenSSL's own, for what libcairn never does on purpose.
class RawTls {
 public:
  RawTls(uint16_t port, const std::string& ca) : tcp_(port) {
    ctx_ = SSL_CTX_new(TLS_client_method());
    SSL_CTX_load_verify_locations(ctx_, ca.c_str(), nullptr);
    SSL_CTX_set_verify(ctx_, SSL_VERIFY_PEER, nullptr);
    ssl_ = SSL_new(ctx_);
    SSL_set_fd(ssl_, tcp_.fd());
  }
  ~RawTls() {
    SSL_free(ssl_);
    SSL_CTX_free(ctx_);
  }
  bool Handshake() { return SSL_connect(ssl_) == 1; }
  bool Send(const flatbuffers::FlatBufferBuilder& fbb) { return SendRaw(WireClient::Frame(fbb)); }
  bool SendRaw(std::string_view bytes) {
    return SSL_write(ssl_, bytes.data(), int(bytes.size())) == int(bytes.size());
  }
  // Reads one frame's payload.
  bool Read(std::string* payload) {
    char header[4];
    if (!ReadExactly(header, 4)) return false;
    uint32_t n;
    std::memcpy(&n, header, 4);
    payload->resize(n);
    return ReadExactly(payload->data(), n);
  }
  WireClient& tcp() { return tcp_; }

 private:
  bool ReadExactly(char* p, size_t n) {
    while (n > 0) {
      int r = SSL_read(ssl_, p, int(n));
      if (r <= 0) return false;
      p += r;
      n -= size_t(r);
    }
    return true;
  }
  WireClient tcp_;
  SSL_CTX* ctx_ = nullptr;
  SSL* ssl_ = nullptr;
};

class TlsTest : public ::testing::Test {
 protected:
  void SetUp() override { Certs(); }
  TempDir dir_;
};

TEST_F(TlsTest, AGoodCertificateCarriesTransactionsByAddressAndByName) {
  ServerProcess server(dir_.Sub("db"), TlsFlags(Certs().server()));
  ASSERT_TRUE(server.ready()) << server.output();
  auto c = Client::Connect(Options(server.port(), Certs().ca()));
  RoundTrip(*c, "by-address");
  // The certificate's DNS name, with the connection still to 127.0.0.1.
  ClientOptions by_name = Options(server.port(), Certs().ca());
  by_name.tls_server_name = "localhost";
  auto c2 = Client::Connect(by_name);
  RoundTrip(*c2, "by-name");
  EXPECT_GE(Counter(*c2, "tls.handshakes"), 2u);
  EXPECT_EQ(Counter(*c2, "tls.handshake_failures"), 0u);
}

TEST_F(TlsTest, StreamsRunOverTlsToo) {
  ServerProcess server(dir_.Sub("db"), TlsFlags(Certs().server()));
  ASSERT_TRUE(server.ready()) << server.output();
  ClientOptions o = Options(server.port(), Certs().ca());
  o.tls_server_name = "localhost";
  auto c = Client::Connect(o);
  c->CreateCollection("t");
  uint64_t first = c->Put("t", "a", Document::FromJson(R"({"v": 1})"));
  client::Watcher w = c->Watch({.collection = "t", .from = first});
  client::WatchBatch b = w.Next();
  ASSERT_FALSE(b.changes.empty());
  EXPECT_EQ(b.changes.front().key, "a");
  EXPECT_EQ(b.changes.front().commit, first);
}

TEST_F(TlsTest, TheClientRefusesAnotherCaAnExpiredCertificateAndAnotherHostsName) {
  {
    ServerProcess server(dir_.Sub("a"), TlsFlags(Certs().server()));
    ASSERT_TRUE(server.ready()) << server.output();
    Error e = ConnectError(Options(server.port(), Certs().other_ca()));
    EXPECT_EQ(e.code(), ErrorCode::kConnectionFailed) << e.what();
    EXPECT_NE(std::string(e.what()).find("TLS handshake failed: the server's certificate was refused"),
              std::string::npos)
        << e.what();
    // The name it was not issued for.
    ClientOptions o = Options(server.port(), Certs().ca());
    o.tls_server_name = "db.elsewhere.example";
    e = ConnectError(o);
    EXPECT_EQ(e.code(), ErrorCode::kConnectionFailed) << e.what();
    EXPECT_NE(std::string(e.what()).find("not valid for the name 'db.elsewhere.example'"),
              std::string::npos)
        << e.what();
  }
  {
    ServerProcess server(dir_.Sub("b"), TlsFlags(Certs().expired()));
    ASSERT_TRUE(server.ready()) << server.output();
    Error e = ConnectError(Options(server.port(), Certs().ca()));
    EXPECT_EQ(e.code(), ErrorCode::kConnectionFailed) << e.what();
    EXPECT_NE(std::string(e.what()).find("certificate has expired"), std::string::npos) << e.what();
  }
  {
    // A certificate for another host, reached by address.
    ServerProcess server(dir_.Sub("c"), TlsFlags(Certs().elsewhere()));
    ASSERT_TRUE(server.ready()) << server.output();
    Error e = ConnectError(Options(server.port(), Certs().ca()));
    EXPECT_NE(std::string(e.what()).find("not valid for the name '127.0.0.1'"), std::string::npos)
        << e.what();
    ClientOptions o = Options(server.port(), Certs().ca());
    o.tls_server_name = "db.elsewhere.example";
    auto c = Client::Connect(o);  // with its name, it is good
    RoundTrip(*c, "k");
  }
}

TEST_F(TlsTest, MutualTlsRequireRefusesClientsWithoutAGoodCertificateAndSeesTheIdentity) {
  ServerProcess server(dir_.Sub("db"),
                       TlsFlags(Certs().server(), {"--tls-ca", Certs().ca(), "--tls-client-auth",
                                                   "require"}));
  ASSERT_TRUE(server.ready()) << server.output();
  // Without a certificate (TLS 1.3: the refusal arrives after the client's handshake).
  Error e = ConnectError(Options(server.port(), Certs().ca()));
  EXPECT_EQ(e.code(), ErrorCode::kConnectionFailed) << e.what();
  EXPECT_NE(std::string(e.what()).find("certificate required"), std::string::npos) << e.what();
  // With one from a CA the server does not trust.
  ClientOptions other = Options(server.port(), Certs().ca());
  other.tls_cert = Certs().client_other_ca().cert;
  other.tls_key = Certs().client_other_ca().key;
  e = ConnectError(other);
  EXPECT_EQ(e.code(), ErrorCode::kConnectionFailed) << e.what();
  // With a good one.
  ClientOptions alice = Options(server.port(), Certs().ca());
  alice.tls_cert = Certs().client().cert;
  alice.tls_key = Certs().client().key;
  auto c = Client::Connect(alice);
  RoundTrip(*c, "alice");
  EXPECT_EQ(Counter(*c, "tls.client_certs"), 1u);
  EXPECT_GE(Counter(*c, "tls.handshake_failures"), 2u);
  EXPECT_TRUE(WaitFor([&] { return server.output().find("client certificate of 'alice'") !=
                                   std::string::npos; },
                      std::chrono::seconds(2)))
      << server.output();
  EXPECT_EQ(server.output().find("mallory"), std::string::npos);
  // No CN: the first DNS name of the subjectAltName.
  ClientOptions svc = Options(server.port(), Certs().ca());
  svc.tls_cert = Certs().client_san_only().cert;
  svc.tls_key = Certs().client_san_only().key;
  Client::Connect(svc)->Ping();
  EXPECT_TRUE(WaitFor([&] { return server.output().find("client certificate of 'svc.example'") !=
                                   std::string::npos; },
                      std::chrono::seconds(2)))
      << server.output();
}

TEST_F(TlsTest, MutualTlsOptionalTakesClientsWithOrWithoutACertificate) {
  ServerProcess server(dir_.Sub("db"),
                       TlsFlags(Certs().server(), {"--tls-ca", Certs().ca(), "--tls-client-auth",
                                                   "optional"}));
  ASSERT_TRUE(server.ready()) << server.output();
  auto anonymous = Client::Connect(Options(server.port(), Certs().ca()));
  RoundTrip(*anonymous, "anonymous");
  ClientOptions alice = Options(server.port(), Certs().ca());
  alice.tls_cert = Certs().client().cert;
  alice.tls_key = Certs().client().key;
  auto c = Client::Connect(alice);
  RoundTrip(*c, "alice");
  EXPECT_EQ(Counter(*c, "tls.client_certs"), 1u);
  // A certificate that is sent is checked.
  ClientOptions other = Options(server.port(), Certs().ca());
  other.tls_cert = Certs().client_other_ca().cert;
  other.tls_key = Certs().client_other_ca().key;
  EXPECT_EQ(ConnectError(other).code(), ErrorCode::kConnectionFailed);
}

TEST_F(TlsTest, APlaintextClientOnTheTlsPortIsToldOrClosedWithinASecond) {
  ServerProcess server(dir_.Sub("db"), TlsFlags(Certs().server()));
  ASSERT_TRUE(server.ready()) << server.output();
  {
    WireClient w(server.port());
    auto t0 = Clock::now();
    ASSERT_TRUE(w.Send(*req::Hello()));
    const wire::ResponseFrame* r = w.Response(1000);
    ASSERT_NE(r, nullptr) << "no plaintext error frame";
    EXPECT_EQ(r->id(), 0u);
    ASSERT_NE(r->error(), nullptr);
    EXPECT_EQ(r->error()->code(), wire::ErrorCode::Unavailable);
    EXPECT_NE(r->error()->message()->str().find("requires TLS"), std::string::npos);
    EXPECT_TRUE(w.ClosedByPeer(1000));
    EXPECT_LT(Clock::now() - t0, std::chrono::seconds(1));
  }
  {
    // Not a cairn frame either (an HTTP request): closed without an answer.
    WireClient w(server.port());
    auto t0 = Clock::now();
    ASSERT_TRUE(w.SendRaw("GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
    EXPECT_TRUE(w.ClosedByPeer(1000));
    EXPECT_LT(Clock::now() - t0, std::chrono::seconds(1));
  }
  auto c = Client::Connect(Options(server.port(), Certs().ca()));
  EXPECT_EQ(Counter(*c, "tls.plaintext_refused"), 1u);
  // libcairn without TLS on the TLS port: the server's plaintext answer.
  ClientOptions plain;
  plain.address = "127.0.0.1:" + std::to_string(server.port());
  plain.max_attempts = 1;
  Error e = ConnectError(plain);
  EXPECT_NE(std::string(e.what()).find("requires TLS"), std::string::npos) << e.what();
}

TEST_F(TlsTest, ATlsClientOnAPlaintextPortFailsClearly) {
  ServerProcess server(dir_.Sub("db"));
  ASSERT_TRUE(server.ready()) << server.output();
  auto t0 = Clock::now();
  Error e = ConnectError(Options(server.port(), Certs().ca()));
  EXPECT_EQ(e.code(), ErrorCode::kConnectionFailed);
  EXPECT_NE(std::string(e.what()).find("TLS handshake failed"), std::string::npos) << e.what();
  EXPECT_NE(std::string(e.what()).find("is the server serving TLS?"), std::string::npos) << e.what();
  EXPECT_LT(Clock::now() - t0, std::chrono::seconds(2)) << "not a timeout";
}

TEST_F(TlsTest, SighupRotatesTheCertificateForNewConnectionsAndOpenOnesKeepWorking) {
  // The files the server was started with, replaced in place as a rotation would.
  std::string cert = dir_.Sub("cert.pem"), key = dir_.Sub("key.pem");
  std::filesystem::copy_file(Certs().server().cert, cert);
  std::filesystem::copy_file(Certs().server().key, key);
  ServerProcess server(dir_.Sub("db"), TlsFlags({cert, key}));
  ASSERT_TRUE(server.ready()) << server.output();
  auto old = Client::Connect(Options(server.port(), Certs().ca()));
  RoundTrip(*old, "before");

  // A failed reload (a key of another certificate) keeps the current context.
  std::filesystem::copy_file(Certs().server2().key, key,
                             std::filesystem::copy_options::overwrite_existing);
  kill(server.pid(), SIGHUP);
  ASSERT_TRUE(WaitFor([&] { return server.output().find("TLS reload failed") != std::string::npos; },
                      std::chrono::seconds(5)))
      << server.output();
  EXPECT_NE(server.output().find("cannot load the private key " + key), std::string::npos)
      << server.output();
  Client::Connect(Options(server.port(), Certs().ca()))->Ping();

  // The new certificate (of the other CA).
  std::filesystem::copy_file(Certs().server2().cert, cert,
                             std::filesystem::copy_options::overwrite_existing);
  kill(server.pid(), SIGHUP);
  ASSERT_TRUE(WaitFor([&] { return server.output().find("reloaded the TLS certificate") !=
                                   std::string::npos; },
                      std::chrono::seconds(5)))
      << server.output();
  auto fresh = Client::Connect(Options(server.port(), Certs().other_ca()));
  RoundTrip(*fresh, "after");
  Error e = ConnectError(Options(server.port(), Certs().ca()));
  EXPECT_NE(std::string(e.what()).find("certificate was refused"), std::string::npos) << e.what();
  // The connection from before goes on with the certificate it started with.
  RoundTrip(*old, "old-still-works");
  EXPECT_EQ(Counter(*fresh, "tls.reloads"), 1u);
  EXPECT_EQ(Counter(*fresh, "tls.reload_failures"), 1u);
}

TEST_F(TlsTest, APeerThatVanishesMidHandshakeDoesNotHoldASlotPastTheHelloTimeout) {
  ServerProcess server(dir_.Sub("db"), TlsFlags(Certs().server(), {"--max-connections", "3",
                                                                    "--max-handshaking", "3"}));
  ASSERT_TRUE(server.ready()) << server.output();
  // The start of a ClientHello record, then nothing.
  std::vector<std::unique_ptr<WireClient>> stuck;
  for (int i = 0; i < 3; i++) {
    stuck.push_back(std::make_unique<WireClient>(server.port()));
    ASSERT_TRUE(stuck.back()->SendRaw(std::string("\x16\x03\x01\x02\x00\x01", 6)));
  }
  auto t0 = Clock::now();
  for (auto& w : stuck) EXPECT_TRUE(w->ClosedByPeer(4000));
  EXPECT_LT(Clock::now() - t0, std::chrono::milliseconds(3500)) << "--hello-timeout is 2 s";
  // Their slots are free again.
  auto c = Client::Connect(Options(server.port(), Certs().ca()));
  RoundTrip(*c, "k");
  EXPECT_EQ(Counter(*c, "timeouts.hello"), 3u);
  EXPECT_EQ(Counter(*c, "connections.open"), 1u);
}

TEST_F(TlsTest, ACloseWithoutCloseNotifyIsCleanBetweenFramesAndAnErrorInsideOne) {
  ServerProcess server(dir_.Sub("db"), TlsFlags(Certs().server()));
  ASSERT_TRUE(server.ready()) << server.output();
  std::string reply;
  {
    RawTls t(server.port(), Certs().ca());
    ASSERT_TRUE(t.Handshake());
    ASSERT_TRUE(t.Send(*req::Hello()));
    ASSERT_TRUE(t.Read(&reply));
    t.tcp().Close();  // no close_notify, between frames
  }
  {
    RawTls t(server.port(), Certs().ca());
    ASSERT_TRUE(t.Handshake());
    ASSERT_TRUE(t.Send(*req::Hello()));
    ASSERT_TRUE(t.Read(&reply));
    std::string ping = WireClient::Frame(*req::Ping(2, "payload"));
    ASSERT_TRUE(t.SendRaw(ping.substr(0, ping.size() / 2)));
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    t.tcp().Close();  // no close_notify, inside a frame
  }
  ASSERT_TRUE(WaitFor([&] { return server.output().find("inside a frame") != std::string::npos; },
                      std::chrono::seconds(3)))
      << server.output();
  std::string out = server.output();
  EXPECT_EQ(out.find("inside a frame"), out.rfind("inside a frame")) << "once, for the second";
  auto c = Client::Connect(Options(server.port(), Certs().ca()));
  EXPECT_EQ(Counter(*c, "connections.open"), 1u);
}

TEST_F(TlsTest, AShutdownThePeerNeverAnswersIsBoundedThenTheSocketIsClosed) {
  ServerProcess server(dir_.Sub("db"), TlsFlags(Certs().server(), {"--idle-timeout", "1"}));
  ASSERT_TRUE(server.ready()) << server.output();
  RawTls t(server.port(), Certs().ca());
  ASSERT_TRUE(t.Handshake());
  ASSERT_TRUE(t.Send(*req::Hello()));
  std::string reply;
  ASSERT_TRUE(t.Read(&reply));
  // Idle: the server answers the timeout, sends close_notify, and this peer reads nothing
  // and answers nothing. The TCP connection must still end.
  auto t0 = Clock::now();
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  char buf[4096];
  bool eof = false;
  while (!eof && Clock::now() - t0 < std::chrono::seconds(6)) {
    pollfd p{t.tcp().fd(), POLLIN, 0};
    if (poll(&p, 1, 50) > 0) eof = ::recv(t.tcp().fd(), buf, sizeof buf, 0) <= 0;
  }
  EXPECT_TRUE(eof);
  EXPECT_LT(Clock::now() - t0, std::chrono::milliseconds(1000 + 1500 + 1000));
}

TEST_F(TlsTest, TheCliTakesTlsFromFlagsOrTheEnvironment) {
  ServerProcess server(dir_.Sub("db"),
                       TlsFlags(Certs().server(), {"--tls-ca", Certs().ca(), "--tls-client-auth",
                                                   "require"}));
  ASSERT_TRUE(server.ready()) << server.output();
  std::string addr = " --addr 127.0.0.1:" + std::to_string(server.port());
  std::string cli = CAIRN_CLI_PATH;
  const TestCerts& c = Certs();
  CommandRun r = RunCommand(cli + addr + " --tls-ca " + c.ca() + " --tls-cert " + c.client().cert +
                                " --tls-key " + c.client().key + " ping",
                            dir_);
  EXPECT_EQ(r.code, 0) << r.out << r.err;
  r = RunCommand("CAIRN_TLS_CA=" + c.ca() + " CAIRN_TLS_CERT=" + c.client().cert +
                     " CAIRN_TLS_KEY=" + c.client().key +
                     " CAIRN_TLS_SERVER_NAME=localhost " + cli + addr + " ping",
                 dir_);
  EXPECT_EQ(r.code, 0) << r.out << r.err;
  r = RunCommand("CAIRN_TLS_CA=" + c.ca() + " CAIRN_TLS_CERT=" + c.client().cert +
                     " CAIRN_TLS_KEY=" + c.client().key +
                     " CAIRN_TLS_SERVER_NAME=db.elsewhere.example " + cli + addr + " ping",
                 dir_);
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.err.find("not valid for the name 'db.elsewhere.example'"), std::string::npos) << r.err;
  r = RunCommand(cli + addr + " ping", dir_);  // no TLS
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.err.find("requires TLS"), std::string::npos) << r.err;
}

TEST_F(TlsTest, BadTlsFlagsAreRefusedAtStartup) {
  ServerProcess missing(dir_.Sub("a"), {"--tls-cert", dir_.Sub("none.pem"), "--tls-key",
                                        Certs().server().key});
  EXPECT_FALSE(missing.ready());
  EXPECT_NE(missing.output().find("cannot load the certificate"), std::string::npos)
      << missing.output();
  ServerProcess alone(dir_.Sub("b"), {"--tls-cert", Certs().server().cert});
  EXPECT_FALSE(alone.ready());
  EXPECT_NE(alone.output().find("--tls-cert and --tls-key go together"), std::string::npos)
      << alone.output();
  ServerProcess no_ca(dir_.Sub("c"), TlsFlags(Certs().server(), {"--tls-client-auth", "require"}));
  EXPECT_FALSE(no_ca.ready());
  EXPECT_NE(no_ca.output().find("needs --tls-ca"), std::string::npos) << no_ca.output();
}

}  // namespace
}  // namespace cairn

// SCRAM-SHA-256 (protocol/include/cairn/protocol/scram.h): the RFC 7677 test vector on
// both sides, a client and a server against each other, the failures that must fail
// (wrong password, unknown user, replay, a forged server signature, exchanges out of
// order) and the parsers' refusal of every kind of malformed message.
#include "cairn/protocol/scram.h"

#include <gtest/gtest.h>

#include <stdexcept>
#include <string>
#include <vector>

namespace cairn::scram {
namespace {

// RFC 7677, section 3.
constexpr std::string_view kUser = "user";
constexpr std::string_view kPassword = "pencil";
constexpr std::string_view kClientNonce = "rOprNGfwEbeRWgbNEkqO";
constexpr std::string_view kServerNonce = "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
constexpr std::string_view kSalt = "W22ZaJ0SNY7soEsUEjb6gQ==";
constexpr std::string_view kClientFirst = "n,,n=user,r=rOprNGfwEbeRWgbNEkqO";
constexpr std::string_view kServerFirst =
    "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
constexpr std::string_view kClientFinal =
    "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
    "p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
constexpr std::string_view kServerFinal = "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=";

constexpr std::string_view kWrong = "wrong password or unknown user";

Client RfcClient() {
  return Client(std::string(kUser), std::string(kPassword), std::string(kClientNonce));
}

Credentials RfcCredentials() {
  return MakeCredentials(kPassword, *Unbase64(kSalt), 4096);
}

TEST(ScramTest, Rfc7677VectorClientSide) {
  Client client = RfcClient();
  EXPECT_EQ(client.Start(), kClientFirst);
  std::string error;
  std::optional<std::string> final = client.Challenge(kServerFirst, &error);
  ASSERT_TRUE(final) << error;
  EXPECT_EQ(*final, kClientFinal);
  EXPECT_TRUE(client.Verify(kServerFinal, &error)) << error;
}

TEST(ScramTest, Rfc7677VectorServerSide) {
  Server server("secret", kDefaultIterations, std::string(kServerNonce));
  std::string error;
  std::optional<std::string> user = server.Receive(kClientFirst, &error);
  ASSERT_TRUE(user) << error;
  EXPECT_EQ(*user, "user");
  EXPECT_EQ(server.user(), "user");
  EXPECT_EQ(server.Challenge(RfcCredentials()), kServerFirst);
  std::optional<std::string> final = server.Finish(kClientFinal, &error);
  ASSERT_TRUE(final) << error;
  EXPECT_EQ(*final, kServerFinal);
}

TEST(ScramTest, CredentialsHoldNoPassword) {
  Credentials c = RfcCredentials();
  EXPECT_EQ(c.salt, *Unbase64(kSalt));
  EXPECT_EQ(c.iterations, 4096u);
  EXPECT_EQ(c.stored_key.size(), 32u);
  EXPECT_EQ(c.server_key.size(), 32u);
  EXPECT_NE(c.stored_key, c.server_key);
  // A fresh salt each time: the same password gives different credentials.
  Credentials a = MakeCredentials("pencil", kMinIterations);
  Credentials b = MakeCredentials("pencil", kMinIterations);
  EXPECT_EQ(a.salt.size(), 16u);
  EXPECT_NE(a.salt, b.salt);
  EXPECT_NE(a.stored_key, b.stored_key);
  EXPECT_EQ(MakeCredentials("pencil", kMinIterations).iterations, kMinIterations);
  EXPECT_THROW(MakeCredentials("pencil", kMinIterations - 1), std::invalid_argument);
  EXPECT_THROW(MakeCredentials("pencil", "", kMinIterations), std::invalid_argument);
}

// One whole exchange; returns the server's error ("" on success) and checks the client
// accepts the server-final when the server accepted.
struct Outcome {
  bool ok = false;
  std::string error;
  std::string salt_b64;  // from the server-first
  std::string server_first;
};

Outcome Exchange(std::string user, std::string password, const std::optional<Credentials>& creds,
                 std::string secret = "server secret", uint32_t mock_iterations = 4096) {
  Client client(user, std::move(password));
  Server server(std::move(secret), mock_iterations);
  Outcome out;
  std::optional<std::string> named = server.Receive(client.Start(), &out.error);
  if (!named) return out;
  EXPECT_EQ(*named, user);
  out.server_first = server.Challenge(creds);
  out.salt_b64 = out.server_first.substr(out.server_first.find(",s=") + 3);
  out.salt_b64 = out.salt_b64.substr(0, out.salt_b64.find(','));
  std::string client_error;
  std::optional<std::string> final = client.Challenge(out.server_first, &client_error);
  EXPECT_TRUE(final) << client_error;
  if (!final) return out;
  std::optional<std::string> server_final = server.Finish(*final, &out.error);
  if (!server_final) return out;
  out.ok = client.Verify(*server_final, &client_error);
  EXPECT_TRUE(out.ok) << client_error;
  return out;
}

TEST(ScramTest, ClientAndServerAgree) {
  Credentials c = MakeCredentials("correct horse", kMinIterations);
  Outcome o = Exchange("alice", "correct horse", c);
  EXPECT_TRUE(o.ok) << o.error;
  EXPECT_EQ(*Unbase64(o.salt_b64), c.salt);
  // Names with every allowed kind of character.
  Credentials d = MakeCredentials("", kMinIterations);  // an empty password is a password
  EXPECT_TRUE(Exchange("svc-1.backup_x@example.org", "", d).ok);
}

TEST(ScramTest, WrongPasswordFails) {
  Credentials c = MakeCredentials("correct horse", kMinIterations);
  Outcome o = Exchange("alice", "correct hors", c);
  EXPECT_FALSE(o.ok);
  EXPECT_EQ(o.error, kWrong);
}

TEST(ScramTest, UnknownUserLooksLikeAWrongPassword) {
  Outcome a = Exchange("mallory", "guess", std::nullopt, "secret", 15000);
  Outcome b = Exchange("mallory", "another guess", std::nullopt, "secret", 15000);
  EXPECT_FALSE(a.ok);
  EXPECT_FALSE(b.ok);
  EXPECT_EQ(a.error, kWrong);
  EXPECT_EQ(b.error, kWrong);
  // The same salt at every attempt, of a real salt's size, and the usual iteration count.
  EXPECT_EQ(a.salt_b64, b.salt_b64);
  EXPECT_EQ(Unbase64(a.salt_b64)->size(), 16u);
  EXPECT_TRUE(a.server_first.ends_with(",i=15000")) << a.server_first;
  // Another name, or another server's secret, gets another salt.
  EXPECT_NE(Exchange("trudy", "x", std::nullopt, "secret").salt_b64, a.salt_b64);
  EXPECT_NE(Exchange("mallory", "x", std::nullopt, "other secret").salt_b64, a.salt_b64);
  // Even the right "password" for a mock salt cannot pass: there is none.
  EXPECT_FALSE(Exchange("mallory", "", std::nullopt, "").ok);
}

TEST(ScramTest, ReplayedClientFinalFails) {
  Credentials c = MakeCredentials("pw", kMinIterations);
  Client client("alice", "pw");
  std::string first = client.Start(), error;
  Server one("s", 4096);
  ASSERT_TRUE(one.Receive(first, &error));
  std::optional<std::string> final = client.Challenge(one.Challenge(c), &error);
  ASSERT_TRUE(final);
  ASSERT_TRUE(one.Finish(*final, &error)) << error;

  // An eavesdropper sends the same two messages to a new exchange: its nonce differs.
  Server two("s", 4096);
  ASSERT_TRUE(two.Receive(first, &error));
  two.Challenge(c);
  EXPECT_FALSE(two.Finish(*final, &error));
  EXPECT_EQ(error, "the nonce is not this exchange's");
  // And a message whose nonce is rewritten to the new one has the old proof, which
  // covers the old nonce.
  Server three("s", 4096);
  ASSERT_TRUE(three.Receive(first, &error));
  std::string sf = three.Challenge(c);
  std::string nonce = sf.substr(2, sf.find(',') - 2);
  std::string forged = "c=biws,r=" + nonce + final->substr(final->find(",p="));
  EXPECT_FALSE(three.Finish(forged, &error));
  EXPECT_EQ(error, kWrong);
}

TEST(ScramTest, ClientRejectsAForgedServerSignature) {
  Client client = RfcClient();
  client.Start();
  std::string error;
  ASSERT_TRUE(client.Challenge(kServerFirst, &error));
  std::string forged(kServerFinal);
  forged[5] = forged[5] == 'A' ? 'B' : 'A';
  EXPECT_FALSE(client.Verify(forged, &error));
  EXPECT_EQ(error, "the server's signature is wrong");
  // Once only: the right one after a wrong one does not pass either.
  EXPECT_FALSE(client.Verify(kServerFinal, &error));

  Client c2 = RfcClient();
  c2.Start();
  ASSERT_TRUE(c2.Challenge(kServerFirst, &error));
  EXPECT_FALSE(c2.Verify("e=invalid-proof", &error));
  EXPECT_EQ(error, "the server refused: invalid-proof");
  Client c3 = RfcClient();
  c3.Start();
  ASSERT_TRUE(c3.Challenge(kServerFirst, &error));
  EXPECT_FALSE(c3.Verify("v=" + Base64(std::string(32, 'x')), &error));
  // A signature for another exchange (another password) does not pass.
  Client c4(std::string(kUser), "pencil2", std::string(kClientNonce));
  c4.Start();
  ASSERT_TRUE(c4.Challenge(kServerFirst, &error));
  EXPECT_FALSE(c4.Verify(kServerFinal, &error));
}

TEST(ScramTest, ClientRefusesABadChallenge) {
  auto challenge = [](std::string_view server_first) {
    Client client = RfcClient();
    client.Start();
    std::string error;
    std::optional<std::string> r = client.Challenge(server_first, &error);
    EXPECT_FALSE(r) << server_first;
    return error;
  };
  std::string salt(kSalt);
  EXPECT_EQ(challenge("r=otherNonce123,s=" + salt + ",i=4096"),
            "the server's nonce does not extend the client's");
  // The nonce must be extended, not just repeated.
  EXPECT_EQ(challenge("r=" + std::string(kClientNonce) + ",s=" + salt + ",i=4096"),
            "the server's nonce does not extend the client's");
  EXPECT_NE(challenge("r=" + std::string(kClientNonce) + "x,s=" + salt + ",i=4095")
                .find("fewer than the least accepted"),
            std::string::npos);
  EXPECT_NE(challenge("r=" + std::string(kClientNonce) + "x,s=" + salt + ",i=4000000000")
                .find("more than the most accepted"),
            std::string::npos);
  EXPECT_EQ(challenge("r=" + std::string(kClientNonce) + "x,s=" + Base64("short") + ",i=4096"),
            "the server's salt is shorter than 16 bytes");
  EXPECT_EQ(challenge("r=x"), "a malformed server-first-message");

  // Out of order: a challenge before Start, two challenges.
  Client early("user", "pencil", std::string(kClientNonce));
  std::string error;
  EXPECT_FALSE(early.Challenge(kServerFirst, &error));
  EXPECT_FALSE(early.Verify(kServerFinal, &error));
  Client twice("user", "pencil", std::string(kClientNonce));
  twice.Start();
  ASSERT_TRUE(twice.Challenge(kServerFirst, &error));
  EXPECT_FALSE(twice.Challenge(kServerFirst, &error));
}

TEST(ScramTest, ServerExchangeOutOfOrderFails) {
  std::string error;
  // Finish before Challenge.
  Server a("s", 4096, std::string(kServerNonce));
  ASSERT_TRUE(a.Receive(kClientFirst, &error));
  EXPECT_FALSE(a.Finish(kClientFinal, &error));
  EXPECT_EQ(error, "no challenge was sent");
  // Challenge before Receive: nothing, and Finish fails.
  Server b("s", 4096, std::string(kServerNonce));
  EXPECT_EQ(b.Challenge(RfcCredentials()), "");
  EXPECT_FALSE(b.Finish(kClientFinal, &error));
  // A second Finish, even with the right message, fails.
  Server c("s", 4096, std::string(kServerNonce));
  ASSERT_TRUE(c.Receive(kClientFirst, &error));
  c.Challenge(RfcCredentials());
  ASSERT_TRUE(c.Finish(kClientFinal, &error));
  EXPECT_FALSE(c.Finish(kClientFinal, &error));
  EXPECT_EQ(error, "the exchange is over");
  // A failed Finish is the end too: the right proof afterwards does not pass.
  Server d("s", 4096, std::string(kServerNonce));
  ASSERT_TRUE(d.Receive(kClientFirst, &error));
  d.Challenge(RfcCredentials());
  EXPECT_FALSE(d.Finish("c=biws,r=x,p=AAAA", &error));
  EXPECT_FALSE(d.Finish(kClientFinal, &error));
  // A second client-first.
  Server e("s", 4096);
  ASSERT_TRUE(e.Receive(kClientFirst, &error));
  EXPECT_FALSE(e.Receive("n,,n=admin,r=abc", &error));
  EXPECT_EQ(e.user(), "user");
}

TEST(ScramTest, ServerChecksChannelBindingAndProofLength) {
  std::string error;
  std::string nonce = std::string(kClientNonce) + std::string(kServerNonce);
  auto finish = [&](std::string_view client_first, std::string_view client_final) {
    Server s("s", 4096, std::string(kServerNonce));
    EXPECT_TRUE(s.Receive(client_first, &error)) << error;
    s.Challenge(RfcCredentials());
    std::optional<std::string> r = s.Finish(client_final, &error);
    return r.has_value();
  };
  std::string proof(kClientFinal.substr(kClientFinal.find(",p=")));
  // "c=" must be base64 of the client's gs2 header.
  EXPECT_FALSE(finish(kClientFirst, "c=eSws,r=" + nonce + proof));
  EXPECT_EQ(error, "the channel binding does not match");
  EXPECT_FALSE(finish(kClientFirst, "c=" + Base64("p=tls-unique,,") + ",r=" + nonce + proof));
  EXPECT_FALSE(finish("y,,n=user,r=rOprNGfwEbeRWgbNEkqO", kClientFinal));
  EXPECT_EQ(error, "the channel binding does not match");
  // "y,," is accepted (the proof then covers "c=eSws"; this one is for "c=biws").
  EXPECT_FALSE(finish("y,,n=user,r=rOprNGfwEbeRWgbNEkqO", "c=eSws,r=" + nonce + proof));
  EXPECT_EQ(error, kWrong);
  // A proof of another length.
  EXPECT_FALSE(finish(kClientFirst, "c=biws,r=" + nonce + ",p=" + Base64(std::string(31, 'a'))));
  EXPECT_EQ(error, "a proof that is not 32 bytes");
  EXPECT_FALSE(finish(kClientFirst, "c=biws,r=" + nonce + ",p=" + Base64(std::string(33, 'a'))));
  EXPECT_EQ(error, "a proof that is not 32 bytes");
  // Right length, wrong bits.
  EXPECT_FALSE(finish(kClientFirst, "c=biws,r=" + nonce + ",p=" + Base64(std::string(32, 'a'))));
  EXPECT_EQ(error, kWrong);
  // And the RFC's own message still passes through the same lambda.
  EXPECT_TRUE(finish(kClientFirst, kClientFinal)) << error;
}

TEST(ScramTest, ServerSaysWhyItRefusesAClientFirst) {
  auto receive = [](std::string_view m) {
    Server s("s", 4096);
    std::string error;
    EXPECT_FALSE(s.Receive(m, &error)) << m;
    return error;
  };
  EXPECT_EQ(receive("p=tls-server-end-point,,n=user,r=abc"), "channel binding is not offered");
  EXPECT_EQ(receive("n,,m=ext,n=user,r=abc"), "an unknown mandatory extension");
  EXPECT_NE(receive("n,,n=a=2Cb,r=abc").find("invalid user name"), std::string::npos);
  EXPECT_NE(receive("n,,n=a=3Db,r=abc").find("invalid user name"), std::string::npos);
  EXPECT_NE(receive("n,,n=" + std::string(65, 'a') + ",r=abc").find("invalid user name"),
            std::string::npos);
  EXPECT_EQ(receive("n,,n=a=2Xb,r=abc"), "a malformed client-first-message");
  EXPECT_EQ(receive("n,,n=user,r=a" + std::string(kMaxMessage, 'b')),
            "the client-first-message is too long");
}

TEST(ScramTest, UserNamesAndEscapes) {
  EXPECT_TRUE(ValidUserName("a"));
  EXPECT_TRUE(ValidUserName(std::string(64, 'z')));
  EXPECT_TRUE(ValidUserName("A-z_0.9@x"));
  EXPECT_FALSE(ValidUserName(""));
  EXPECT_FALSE(ValidUserName(std::string(65, 'z')));
  for (std::string_view bad : {"a b", "a,b", "a=b", "a/b", "é", "a\nb", "a$"}) {
    EXPECT_FALSE(ValidUserName(bad)) << bad;
  }
  // The decoded name is what Receive returns; "=2C" and "=3D" decode (to characters a
  // valid name cannot hold, so they are then refused: see above).
  auto cf = ParseClientFirst("y,,n=bob,r=abc,x=extension");
  ASSERT_TRUE(cf);
  EXPECT_EQ(cf->user, "bob");
  EXPECT_EQ(cf->nonce, "abc");
  EXPECT_EQ(cf->bare, "n=bob,r=abc,x=extension");
}

TEST(ScramTest, Base64IsStrict) {
  for (std::string_view bytes : {"", "f", "fo", "foo", "foob", "fooba", "foobar"}) {
    EXPECT_EQ(Unbase64(Base64(bytes)), std::string(bytes));
  }
  EXPECT_EQ(Base64("foobar"), "Zm9vYmFy");
  EXPECT_EQ(Base64(std::string("\xff\x00\x01", 3)), "/wAB");
  EXPECT_EQ(Unbase64("Zg=="), "f");
  for (std::string_view bad :
       {"Zg=", "Zg", "Zh==", "Zm9=", "Z===", "====", " Zg==", "Zg== ", "Zg==Zg==", "Zm9v\n",
        "Zm9v!", "Zm-v", "Zm_v", "=Zm9", "Zg=a"}) {
    EXPECT_FALSE(Unbase64(bad)) << bad;
  }
  EXPECT_EQ(RandomBytes(0), "");
  EXPECT_EQ(RandomBytes(32).size(), 32u);
  EXPECT_NE(RandomBytes(16), RandomBytes(16));
}

// --- Every parser refuses every kind of malformed message.

std::string Long(std::string_view prefix) {
  std::string m(prefix);
  m.append(kMaxMessage + 1 - m.size(), 'a');
  return m;
}

TEST(ScramTest, MalformedClientFirst) {
  ASSERT_TRUE(ParseClientFirst("n,,n=user,r=abc"));
  std::string max = "n,,n=user,r=";
  max.append(kMaxMessage - max.size(), 'a');
  ASSERT_TRUE(ParseClientFirst(max));  // kMaxMessage bytes is still fine
  const std::vector<std::string> bad = {
      "",
      "n",
      "n,,",
      "n,,n=user",                          // no nonce
      "n,,r=abc",                           // no name
      "n,,r=abc,n=user",                    // order
      "p=tls-server-end-point,,n=user,r=abc",  // channel binding
      "p,,n=user,r=abc",
      "x,,n=user,r=abc",                    // unknown gs2 flag
      "n,a=admin,n=user,r=abc",             // authzid
      "n,a=,n=user,r=abc",
      "n,n=user,r=abc",                     // one comma
      ",,n=user,r=abc",
      "N,,n=user,r=abc",
      "n,,m=ext,n=user,r=abc",              // mandatory extension
      "n,,n=user,r=abc,m=ext",              // "m" cannot be an optional one either
      "n,,n=user,m=ext,r=abc",
      "n,,N=user,r=abc",
      "n,,n=,r=abc",                        // empty name
      "n,,n=user,r=",                       // empty nonce
      "n,,n=user,r=ab\x01",                 // nonce not printable
      "n,,n=user,r=ab c",
      "n,,n=user,r=ab\x7f",
      "n,,n=user,r=ab\xc3\xa9",
      std::string("n,,n=user,r=ab\0c", 16),
      std::string("n,,n=us\0er,r=abc", 16),
      "n,,n=user,r=abc,",                   // trailing comma
      "n,,n=user,,r=abc",                   // empty field
      "n,,,n=user,r=abc",
      "n,,n=user,r=abc,x",                  // extension without '='
      "n,,n=user,r=abc,1=x",                // extension attribute not a letter
      "n,,n=user,r=abc,xy=z",
      "n,,n=user,r=abc,x=",                 // extension without a value
      "n,,n=us=er,r=abc",                   // '=' not an escape
      "n,,n=us=2cer,r=abc",                 // lower-case escape
      "n,,n=user=,r=abc",
      "n,,n=user=2,r=abc",
      "n,,n=a=2Cb,r=abc",                   // decodes to "a,b": not a valid name
      "n,,n=a=3Db,r=abc",
      "n,,n=u ser,r=abc",
      "n,,n=" + std::string(65, 'a') + ",r=abc",
      "n,,n=user,n=user,r=abc",
      "n,,n=user,r=abc,r=def",              // a second nonce is no extension
      Long("n,,n=user,r="),                 // over kMaxMessage
  };
  for (const std::string& m : bad) EXPECT_FALSE(ParseClientFirst(m)) << m;
  for (const std::string& m : bad) {
    Server s("s", 4096);
    std::string error;
    EXPECT_FALSE(s.Receive(m, &error)) << m;
    EXPECT_FALSE(error.empty());
  }
}

TEST(ScramTest, MalformedServerFirst) {
  std::string salt(kSalt);
  ASSERT_TRUE(ParseServerFirst("r=abc,s=" + salt + ",i=4096"));
  ASSERT_TRUE(ParseServerFirst("r=abc,s=" + salt + ",i=4294967295,x=ext"));
  const std::vector<std::string> bad = {
      "",
      "r=abc",
      "r=abc,s=" + salt,                    // no iteration count
      "s=" + salt + ",r=abc,i=4096",        // order
      "r=abc,i=4096,s=" + salt,
      "m=ext,r=abc,s=" + salt + ",i=4096",  // mandatory extension
      "r=abc,s=" + salt + ",i=4096,m=ext",
      "r=,s=" + salt + ",i=4096",
      "r=a\x01" "c,s=" + salt + ",i=4096",
      "r=abc,s=,i=4096",                    // empty salt
      "r=abc,s=" + Base64("") + ",i=4096",
      "r=abc,s=W22ZaJ0SNY7soEsUEjb6gQ=,i=4096",   // bad padding
      "r=abc,s=W22ZaJ0SNY7soEsUEjb6gQ,i=4096",
      "r=abc,s=W22ZaJ0SNY7soEsUEjb6gR==,i=4096",  // stray bits
      "r=abc,s=W22ZaJ0SNY7soEsUEjb6g!==,i=4096",
      "r=abc,s=" + salt + ",i=",
      "r=abc,s=" + salt + ",i=0",
      "r=abc,s=" + salt + ",i=04096",       // leading zero
      "r=abc,s=" + salt + ",i=-1",
      "r=abc,s=" + salt + ",i=+4096",
      "r=abc,s=" + salt + ",i=4096x",
      "r=abc,s=" + salt + ",i= 4096",
      "r=abc,s=" + salt + ",i=4294967296",  // overflow
      "r=abc,s=" + salt + ",i=99999999999999999999999",
      "r=abc,s=" + salt + ",i=4096,",
      "r=abc,,s=" + salt + ",i=4096",
      "r=abc,s=" + salt + ",i=4096,x",
      "R=abc,s=" + salt + ",i=4096",
      "r=abc,s=" + salt + ",i=4096,e=" + Long(""),
  };
  for (const std::string& m : bad) EXPECT_FALSE(ParseServerFirst(m)) << m;
  for (const std::string& m : bad) {
    Client c("user", "pencil", "abc");
    c.Start();
    std::string error;
    EXPECT_FALSE(c.Challenge(m, &error)) << m;
  }
}

TEST(ScramTest, MalformedClientFinal) {
  std::string p = Base64(std::string(32, 'p'));
  auto ok = ParseClientFinal("c=biws,r=abc,x=ext,p=" + p);
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->channel_binding, "n,,");
  EXPECT_EQ(ok->nonce, "abc");
  EXPECT_EQ(ok->proof, std::string(32, 'p'));
  EXPECT_EQ(ok->without_proof, "c=biws,r=abc,x=ext");
  const std::vector<std::string> bad = {
      "",
      "c=biws",
      "c=biws,r=abc",                       // no proof
      "c=biws,p=" + p,                      // no nonce
      "r=abc,c=biws,p=" + p,                // order
      "c=biws,p=" + p + ",r=abc",           // the proof is last
      "c=biws,r=abc,p=" + p + ",x=ext",
      "c=biws,r=abc,m=ext,p=" + p,          // mandatory extension
      "c=biws,r=abc,p=" + p + ",",
      "c=biws,r=abc,,p=" + p,
      ",c=biws,r=abc,p=" + p,
      "c=,r=abc,p=" + p,
      "c=bi,r=abc,p=" + p,                  // not base64
      "c=bi ws,r=abc,p=" + p,
      "c=biws,r=,p=" + p,
      "c=biws,r=a\x01" "c,p=" + p,
      "c=biws,r=abc,p=",
      "c=biws,r=abc,p=" + p.substr(1),
      "c=biws,r=abc,p=!" + p.substr(1),
      "c=biws,r=abc,x,p=" + p,
      "C=biws,r=abc,p=" + p,
      "c=biws,r=abc,p=" + p + "AAAA" + std::string(kMaxMessage, 'A'),
  };
  for (const std::string& m : bad) EXPECT_FALSE(ParseClientFinal(m)) << m;
  for (const std::string& m : bad) {
    Server s("s", 4096, std::string(kServerNonce));
    std::string error;
    ASSERT_TRUE(s.Receive(kClientFirst, &error));
    s.Challenge(RfcCredentials());
    EXPECT_FALSE(s.Finish(m, &error)) << m;
    EXPECT_EQ(error, "a malformed client-final-message") << m;
  }
}

TEST(ScramTest, MalformedServerFinal) {
  ASSERT_TRUE(ParseServerFinal(kServerFinal));
  ASSERT_TRUE(ParseServerFinal(std::string(kServerFinal) + ",x=ext"));
  const std::vector<std::string> bad = {
      "",
      "v=",
      "v=!!!!",
      "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4",  // padding missing
      "e=invalid-proof",
      "e=other-error",
      "x=abc",
      "V=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=",
      std::string(kServerFinal) + ",",
      std::string(kServerFinal) + ",m=ext",
      std::string(kServerFinal) + ",x",
      "," + std::string(kServerFinal),
      "v=" + std::string(kMaxMessage, 'A'),
  };
  for (const std::string& m : bad) EXPECT_FALSE(ParseServerFinal(m)) << m;
  for (const std::string& m : bad) {
    Client c = RfcClient();
    c.Start();
    std::string error;
    ASSERT_TRUE(c.Challenge(kServerFirst, &error));
    EXPECT_FALSE(c.Verify(m, &error)) << m;
  }
}

}  // namespace
}  // namespace cairn::scram

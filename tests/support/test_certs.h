// A test PKI made at test time with the openssl command line (P-256 keys): two CAs,
// server certificates for 127.0.0.1 and localhost (subjectAltName IP and DNS), an
// expired one, one for another host, one from the other CA, and client certificates.
// Nothing of it is checked in: every run makes its own.
#pragma once

#include <cstdlib>
#include <fstream>
#include <stdexcept>
#include <string>

#include "temp_dir.h"

namespace cairn::testing {

class TestCerts {
 public:
  // A key and certificate pair, as PEM files.
  struct Pair {
    std::string cert, key;
  };

  TestCerts() {
    ca_ = MakeCa("ca", "cairn test CA");
    other_ca_ = MakeCa("other-ca", "another test CA");
    server_ = Issue("server", "localhost", "DNS:localhost,IP:127.0.0.1", ca_, 30, kServerUse);
    server2_ = Issue("server2", "localhost", "DNS:localhost,IP:127.0.0.1", other_ca_, 30, kServerUse);
    expired_ = Issue("expired", "localhost", "DNS:localhost,IP:127.0.0.1", ca_, -1, kServerUse);
    elsewhere_ = Issue("elsewhere", "db.elsewhere.example", "DNS:db.elsewhere.example", ca_, 30,
                       kServerUse);
    client_ = Issue("client", "alice", "email:alice@example.com", ca_, 30, kClientUse);
    client_san_only_ = Issue("client-san", "", "DNS:svc.example", ca_, 30, kClientUse);
    client_other_ca_ = Issue("client-other", "mallory", "email:mallory@example.com", other_ca_, 30,
                             kClientUse);
  }

  // The CA that signed server(), expired(), elsewhere() and client().
  const std::string& ca() const { return ca_.cert; }
  // The CA that signed server2() and client_other_ca().
  const std::string& other_ca() const { return other_ca_.cert; }
  const Pair& server() const { return server_; }
  const Pair& server2() const { return server2_; }
  const Pair& expired() const { return expired_; }
  const Pair& elsewhere() const { return elsewhere_; }  // for db.elsewhere.example only
  const Pair& client() const { return client_; }        // CN alice
  const Pair& client_san_only() const { return client_san_only_; }  // no CN; DNS svc.example
  const Pair& client_other_ca() const { return client_other_ca_; }
  const TempDir& dir() const { return dir_; }

 private:
  static constexpr const char* kServerUse = "serverAuth";
  static constexpr const char* kClientUse = "clientAuth";

  void Run(const std::string& cmd) {
    std::string log = dir_.Sub("openssl.log");
    if (std::system((cmd + " >>" + log + " 2>&1").c_str()) != 0) {
      std::ifstream in(log);
      std::string text((std::istreambuf_iterator<char>(in)), {});
      throw std::runtime_error("openssl failed: " + cmd + "\n" + text);
    }
  }

  Pair MakeCa(const std::string& name, const std::string& cn) {
    Pair p{dir_.Sub(name + ".pem"), dir_.Sub(name + ".key")};
    Run("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout " +
        p.key + " -out " + p.cert + " -days 30 -subj '/CN=" + cn +
        "' -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign");
    return p;
  }

  // `days` < 0: a certificate that has already expired.
  Pair Issue(const std::string& name, const std::string& cn, const std::string& san,
             const Pair& ca, int days, const char* use) {
    Pair p{dir_.Sub(name + ".pem"), dir_.Sub(name + ".key")};
    std::string csr = dir_.Sub(name + ".csr"), ext = dir_.Sub(name + ".ext");
    std::ofstream(ext) << "subjectAltName=" << san << "\nextendedKeyUsage=" << use
                       << "\nbasicConstraints=CA:FALSE\n";
    Run("openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout " + p.key +
        " -out " + csr + " -subj '/" + (cn.empty() ? "O=cairn tests" : "CN=" + cn) + "'");
    Run("openssl x509 -req -in " + csr + " -CA " + ca.cert + " -CAkey " + ca.key +
        " -set_serial " + std::to_string(++serial_) + " -out " + p.cert + " -days " +
        std::to_string(days) + " -extfile " + ext);
    return p;
  }

  TempDir dir_;
  int serial_ = 1000;
  Pair ca_, other_ca_, server_, server2_, expired_, elsewhere_, client_, client_san_only_,
      client_other_ca_;
};

}  // namespace cairn::testing

// cairnd: the cairn server. `cairnd --help` lists the flags.
#include <signal.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <spdlog/spdlog.h>

#include "auth.h"
#include "cairn/engine/engine.h"
#include "cairn/protocol/scram.h"
#include "fault.h"
#include "follower.h"
#include "restore.h"
#include "server.h"
#include "verifier.h"

namespace {

// "64G", "512M", "1048576" -> bytes.
bool ParseSize(const std::string& s, uint64_t* out) {
  if (s.empty()) return false;
  size_t pos = 0;
  uint64_t v;
  try {
    v = std::stoull(s, &pos);
  } catch (...) {
    return false;
  }
  std::string unit = s.substr(pos);
  if (!unit.empty() && (unit.back() == 'B' || unit.back() == 'b')) unit.pop_back();
  if (!unit.empty() && (unit.back() == 'i')) unit.pop_back();
  int shift = 0;
  if (unit == "K" || unit == "k") shift = 10;
  else if (unit == "M" || unit == "m") shift = 20;
  else if (unit == "G" || unit == "g") shift = 30;
  else if (unit == "T" || unit == "t") shift = 40;
  else if (!unit.empty()) return false;
  if (shift && v > (~uint64_t{0} >> shift)) return false;
  *out = v << shift;
  return true;
}

// Writes "PORT\n" to `path` so that no reader ever sees a partial file: into a temporary
// file beside it, then renamed over it.
bool WritePortFile(const std::string& path, uint16_t port, std::string* error) {
  std::string tmp = path + ".tmp." + std::to_string(::getpid());
  std::FILE* f = std::fopen(tmp.c_str(), "w");
  if (!f) {
    *error = tmp + ": " + std::strerror(errno);
    return false;
  }
  bool ok = std::fprintf(f, "%u\n", unsigned(port)) > 0;
  ok = (std::fclose(f) == 0) && ok;
  if (!ok || std::rename(tmp.c_str(), path.c_str()) != 0) {
    *error = path + ": " + std::strerror(errno);
    std::remove(tmp.c_str());
    return false;
  }
  return true;
}

std::string Human(uint64_t bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  double v = double(bytes);
  while (v >= 1024 && u < 4) v /= 1024, u++;
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.4g %s", v, units[u]);
  return buf;
}

std::string JsonString(std::string_view s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += char(c);
    } else if (c < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      out += buf;
    } else {
      out += char(c);
    }
  }
  return out + "\"";
}

// cairnd --verify: the verifier in a child process (verifier.h), its report on stdout.
// Exit 0 when the database is consistent, 1 when it has problems or could not be checked.
int VerifyOffline(const cairn::server::ServerOptions& opts, bool json) {
  cairn::server::VerifierOptions v;
  v.data_dir = opts.data_dir;
  v.max_size = opts.engine.max_size;
  v.timeout = opts.verify_timeout;
  cairn::server::VerifyOutcome outcome = cairn::server::RunVerifier(v);
  const cairn::VerifyReport& r = outcome.report;
  if (json) {
    std::string problems;
    for (const std::string& p : r.problems) {
      problems += (problems.empty() ? "" : ",") + JsonString(p);
    }
    std::printf("{\"ok\":%s,\"finished\":%s,\"records\":%llu,\"index_entries\":%llu,"
                "\"log_entries\":%llu,\"problems\":[%s]}\n",
                r.ok() ? "true" : "false", outcome.finished() ? "true" : "false",
                (unsigned long long)r.records, (unsigned long long)r.index_entries,
                (unsigned long long)r.log_entries, problems.c_str());
  } else {
    std::printf("cairnd --verify %s\n", opts.data_dir.c_str());
    if (outcome.finished()) {
      std::printf("checked %llu records, %llu index entries, %llu change-log entries\n",
                  (unsigned long long)r.records, (unsigned long long)r.index_entries,
                  (unsigned long long)r.log_entries);
    } else {
      std::printf("the check did not finish\n");
    }
    if (r.ok()) {
      std::printf("consistent\n");
    } else {
      std::printf("%zu problem(s):\n", r.problems.size());
      for (const std::string& p : r.problems) std::printf("  %s\n", p.c_str());
    }
  }
  return r.ok() ? 0 : 1;
}

// A password from a file: its content, one trailing newline (and CR) removed. Refuses an
// unreadable or empty file, and one of more than 1024 bytes (not a password file).
cairn::Status ReadPasswordFile(const std::string& path, std::string* password) {
  using cairn::Code;
  using cairn::Status;
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) return Status(Code::kBadRequest, "cannot read " + path + ": " + std::strerror(errno));
  password->clear();
  char buf[512];
  for (size_t n; (n = std::fread(buf, 1, sizeof buf, f)) > 0 && password->size() <= 1024;) {
    password->append(buf, n);
  }
  std::fclose(f);
  if (!password->empty() && password->back() == '\n') password->pop_back();
  if (!password->empty() && password->back() == '\r') password->pop_back();
  if (password->empty()) return Status(Code::kBadRequest, path + " is empty");
  if (password->size() > 1024) return Status(Code::kBadRequest, path + " holds more than 1024 bytes");
  return Status::Ok();
}

// --init-admin: the first user, with the role admin, before the server serves.
cairn::Status InitAdmin(cairn::server::Server& server, const std::string& name,
                        const std::string& password_file) {
  using cairn::Code;
  using cairn::Status;
  if (password_file.empty()) return Status(Code::kBadRequest, "needs --admin-password-file");
  cairn::server::AuthStore& auth = server.auth();
  if (auth.Credentials(name)) {
    spdlog::info("--init-admin: user '{}' exists already; nothing to do", name);
    return Status::Ok();
  }
  if (auth.enabled()) {
    return Status(Code::kAlreadyExists,
                  "this database has users already, and '" + name +
                      "' is not one of them; manage users with cairn user (as an admin)");
  }
  std::string password;
  if (Status s = ReadPasswordFile(password_file, &password); !s.ok()) return s;
  cairn::server::User admin;
  admin.name = name;
  admin.roles = {"admin"};
  admin.credentials = cairn::scram::MakeCredentials(password);
  if (Status s = auth.CreateUser(server.engine(), admin); !s.ok()) return s;
  spdlog::info("--init-admin: created user '{}' with the role admin; connections must now "
               "authenticate", name);
  return Status::Ok();
}

}  // namespace

int main(int argc, char** argv) {
  using cairn::server::ServerOptions;
  ServerOptions opts;
  std::string durability = "sync", max_size = "64G", max_frame = "16M", log_level = "info";
  std::string space_reserve = "0";
  std::string port_file;
  unsigned idle_seconds = 300, hello_seconds = 10, frame_seconds = 30, flush_ms = 1000;
  bool verify = false, verify_child = false, json = false;
  std::string restore;
  double verify_timeout_s = 600;

  CLI::App app{"cairnd: the cairn storage server"};
  app.set_version_flag("--version", "cairnd " CAIRN_VERSION, "Print the version and exit");
  auto* data_flag = app.add_option("--data", opts.data_dir, "Data folder (created if missing)")
                       ->capture_default_str();
  app.add_option("--listen", opts.listen, "HOST:PORT to listen on; port 0 picks a free port")
      ->capture_default_str();
  app.add_option("--port-file", port_file,
                 "Once listening, write the port bound (with --listen HOST:0, the one picked) "
                 "to this file, atomically (a temporary file renamed); removed at a clean exit");
  app.add_option("--threads", opts.threads, "IO threads (0: one per core)")->capture_default_str();
  app.add_option("--durability", durability,
                 "sync: fsync every group commit (survives power loss); nometasync: fsync "
                 "data only (a power loss may undo the last commits); nosync: flush every "
                 "--flush-interval (an OS crash or power loss may lose that much and damage the "
                 "file: run --verify after one)")
      ->check(CLI::IsMember({"sync", "nometasync", "nosync"}))
      ->capture_default_str();
  app.add_option("--flush-interval", flush_ms, "Milliseconds between flushes with nosync")
      ->capture_default_str();
  app.add_option("--max-size", max_size, "Cap on the database size (K, M, G, T suffixes)")
      ->capture_default_str();
  app.add_option("--space-reserve", space_reserve,
                 "Room kept below --max-size and on the disk for deletes and drops "
                 "(K, M, G suffixes; 0: a 32nd of the cap or the disk, 256K to 64M)")
      ->capture_default_str();
  app.add_option("--max-connections", opts.max_connections, "Connections served at once")
      ->capture_default_str();
  app.add_option("--max-frame", max_frame, "Largest request or response (K, M suffixes)")
      ->capture_default_str();
  app.add_option("--max-inflight", opts.max_inflight,
                 "Requests one connection may have outstanding before the server stops reading it")
      ->capture_default_str();
  app.add_option("--max-handshaking", opts.max_handshaking,
                 "Of --max-connections, how many may not have sent Hello yet; past it a newcomer "
                 "takes the place of the oldest (0: half)")
      ->capture_default_str();
  app.add_option("--idle-timeout", idle_seconds,
                 "Seconds without a complete frame before a connection is closed")
      ->capture_default_str();
  app.add_option("--hello-timeout", hello_seconds,
                 "Seconds a new connection has to send Hello before it is closed")
      ->capture_default_str();
  app.add_option("--frame-timeout", frame_seconds,
                 "Seconds a frame may take to arrive whole, from its first byte, before the "
                 "connection is closed")
      ->capture_default_str();
  app.add_option("--log-retention", opts.engine.log_retention,
                 "Commits the change log keeps at least")
      ->capture_default_str();
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error")
      ->capture_default_str();
  app.add_flag("--verify", verify,
               "Check the database in --data and exit (0: consistent, 1: problems or damage); "
               "safe on a damaged file and while a server has the folder open");
  app.add_flag("--json", json, "With --verify: print the report as one JSON object");
  app.add_option("--restore", restore,
                 "Restore the backup FILE (or -, standard input) into --data DIR, which must be "
                 "new or empty, and exit (0: restored; 1: refused, DIR left as it was)")
      ->option_text("FILE")
      ->excludes("--verify");
  app.add_option("--verify-timeout", verify_timeout_s,
                 "Seconds a check (--verify or a VerifyDatabase request) may take before it is "
                 "stopped")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  unsigned replica_keep_seconds = 3600, replica_timeout_ms = 5000;
  double replica_apply_delay_ms = 0;
  std::string replica_log_keep_bytes = "4G";
  app.add_option("--replica-of", opts.replica_of,
                 "Run as a replica of the primary at HOST:PORT: bootstrap from its snapshot, "
                 "follow its change log, serve reads, refuse writes (docs/replication.md)");
  app.add_option("--replica-name", opts.replica_name,
                 "How the primary lists this replica (default: its listen address)");
  app.add_option("--replica-keep-seconds", replica_keep_seconds,
                 "How long the change log is kept for a replica that went away")
      ->capture_default_str();
  app.add_option("--replica-log-keep", opts.engine.replica_log_keep,
                 "At most this many commits of change log are kept for replicas behind; a "
                 "replica further behind bootstraps again")
      ->capture_default_str();
  app.add_option("--replica-log-keep-bytes", replica_log_keep_bytes,
                 "At most this many bytes of change log are kept for replicas (K, M, G; 0: no "
                 "byte bound)")
      ->capture_default_str();
  app.add_option("--replica-apply-delay", replica_apply_delay_ms,
                 "On a replica: milliseconds a batch may wait for more commits before it is "
                 "applied (fewer fsyncs, a little more lag; 0: at once)")
      ->check(CLI::Range(0.0, 1000.0))
      ->capture_default_str();
  app.add_option("--replica-timeout", replica_timeout_ms,
                 "Milliseconds a write with `replicas` but no timeout of its own waits")
      ->capture_default_str();
  std::string tls_client_auth = "none";
  app.add_option("--tls-cert", opts.tls.cert_file,
                 "Serve TLS only, with this certificate (PEM; the server's first, then its "
                 "chain); reloaded on SIGHUP")
      ->option_text("FILE");
  app.add_option("--tls-key", opts.tls.key_file, "The private key of --tls-cert (PEM)")
      ->option_text("FILE");
  app.add_option("--tls-ca", opts.tls.ca_file,
                 "CA certificates (PEM) that client certificates must chain to (mutual TLS)")
      ->option_text("FILE");
  app.add_option("--tls-client-auth", tls_client_auth,
                 "Client certificates: none (not asked for), optional (checked if sent), "
                 "require (a connection without a valid one is refused); needs --tls-ca")
      ->check(CLI::IsMember({"none", "optional", "require"}))
      ->capture_default_str();
  app.add_flag("--insecure", opts.insecure,
               "Serve a database without users on a non-loopback address: anyone who can "
               "reach it may read, change and drop everything (docs/security.md)");
  std::string init_admin, admin_password_file;
  app.add_option("--init-admin", init_admin,
                 "Before serving, create this user with the role admin, if the database has "
                 "no users (nothing happens if the user exists; refused if other users do); "
                 "needs --admin-password-file")
      ->option_text("NAME");
  app.add_option("--admin-password-file,--password-file", admin_password_file,
                 "The --init-admin user's password: the file's content, one trailing newline "
                 "removed")
      ->option_text("FILE");
  std::string replica_password_file;
  app.add_option("--replica-user", opts.replica_user,
                 "With --replica-of: the primary's user to follow it as (a role with the "
                 "replication permission), when the primary has users")
      ->option_text("NAME");
  app.add_option("--replica-password-file", replica_password_file,
                 "The --replica-user's password: the file's content, one trailing newline "
                 "removed")
      ->option_text("FILE");
  // The child cairnd runs for a check (verifier.h); not for people.
  app.add_flag("--verify-child", verify_child)->group("");
  CLI11_PARSE(app, argc, argv);

  spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ %v");
  spdlog::set_level(spdlog::level::from_str(log_level));

  uint64_t frame_bytes = 0;
  if (!ParseSize(max_size, &opts.engine.max_size) || !ParseSize(max_frame, &frame_bytes) ||
      !ParseSize(space_reserve, &opts.engine.space_reserve) ||
      !ParseSize(replica_log_keep_bytes, &opts.engine.replica_log_keep_bytes)) {
    std::fprintf(stderr, "cairnd: --max-size, --max-frame and --space-reserve take sizes "
                         "like 512M or 64G\n");
    return 2;
  }
  if (frame_bytes < cairn::wire::kMinMaxFrame || frame_bytes > (1u << 30)) {
    std::fprintf(stderr, "cairnd: --max-frame must be between 64K and 1G\n");
    return 2;
  }
  if (opts.max_inflight == 0 || opts.max_connections == 0) {
    std::fprintf(stderr, "cairnd: --max-inflight and --max-connections must be at least 1\n");
    return 2;
  }
  if (opts.max_handshaking > opts.max_connections) {
    std::fprintf(stderr, "cairnd: --max-handshaking cannot exceed --max-connections\n");
    return 2;
  }
  if (hello_seconds == 0 || frame_seconds == 0 || idle_seconds == 0) {
    std::fprintf(stderr, "cairnd: --hello-timeout, --frame-timeout and --idle-timeout must be at least 1\n");
    return 2;
  }
  cairn::server::ParseClientAuth(tls_client_auth, &opts.tls.client_auth);
  if (cairn::Status s = cairn::server::CheckTlsOptions(opts.tls); !s.ok()) {
    std::fprintf(stderr, "cairnd: %s\n", s.message().c_str());
    return 2;
  }
  opts.max_frame = uint32_t(frame_bytes);
  opts.idle_timeout = std::chrono::seconds(idle_seconds);
  opts.hello_timeout = std::chrono::seconds(hello_seconds);
  opts.frame_timeout = std::chrono::seconds(frame_seconds);
  opts.engine.durability = durability == "sync"         ? cairn::Durability::kSync
                           : durability == "nometasync" ? cairn::Durability::kNoMetaSync
                                                        : cairn::Durability::kNoSync;
  opts.engine.flush_interval = std::chrono::milliseconds(flush_ms);
  opts.verify_timeout = std::chrono::milliseconds(int64_t(verify_timeout_s * 1000));
  opts.replica_keep = std::chrono::seconds(replica_keep_seconds);
  opts.replica_timeout = std::chrono::milliseconds(std::max(1u, replica_timeout_ms));
  opts.engine.replica = !opts.replica_of.empty();
  if (opts.verify_timeout.count() < 1) opts.verify_timeout = std::chrono::milliseconds(1);
  if (verify_child) return cairn::server::VerifierChildMain(opts.data_dir, opts.engine.max_size, 1);
  if (verify) return VerifyOffline(opts, json);
  if (!restore.empty()) {
    // Never into the default folder by accident.
    if (data_flag->count() == 0) {
      std::fprintf(stderr, "cairnd: --restore needs --data DIR, the folder to restore into\n");
      return 2;
    }
    return cairn::server::RestoreOffline(opts, restore);
  }
  // A record must fit in a response with room to spare.
  opts.engine.max_value_size = opts.max_frame / 2 - 1024;

  std::string replica_password;
  if (!opts.replica_user.empty() || !replica_password_file.empty()) {
    cairn::Status s = opts.replica_user.empty() || replica_password_file.empty()
                          ? cairn::Status(cairn::Code::kBadRequest,
                                          "--replica-user and --replica-password-file go together")
                          : ReadPasswordFile(replica_password_file, &replica_password);
    if (!s.ok()) {
      std::fprintf(stderr, "cairnd: %s\n", s.message().c_str());
      return 2;
    }
  }

  ::signal(SIGPIPE, SIG_IGN);
  // A replica's server is restarted in place after a bootstrap: the snapshot replaces the
  // data file while the engine is closed (Follower::FinishBootstrap), on the same port.
  cairn::server::ReplicaState replica_state;
  bool replica = !opts.replica_of.empty();
  if (!replica) {
    if (std::string of = cairn::server::Follower::ReplicaMarker(opts.data_dir); !of.empty()) {
      spdlog::error("{} holds a replica of {}: start it with --replica-of, or promote it first "
                    "(cairn promote) to make it a primary (docs/replication.md)",
                    opts.data_dir, of);
      return 1;
    }
  }
  uint16_t bound_port = 0;
  for (;;) {
    if (replica) {
      if (cairn::Status s = cairn::server::Follower::FinishBootstrap(opts.data_dir); !s.ok()) {
        spdlog::error("cannot finish the bootstrap in {}: {}", opts.data_dir, s.ToString());
        return 1;
      }
    }
    cairn::server::InstallWriterFault(&opts.engine);  // cairnd-faults only
    auto engine = cairn::Engine::Open(opts.data_dir, opts.engine);
    if (!engine.ok()) {
      spdlog::error("cannot open the database in {}: {}", opts.data_dir, engine.status().ToString());
      return 1;
    }
    uint64_t last_commit = (*engine)->LastCommit();
    ServerOptions incarnation = opts;
    if (bound_port != 0) {
      std::string host, port;
      cairn::server::ParseHostPort(opts.listen, &host, &port);
      incarnation.listen = (host.find(':') != std::string::npos ? "[" + host + "]" : host) + ":" +
                           std::to_string(bound_port);
    }
    cairn::server::Server server(incarnation, std::move(engine).value());
    std::unique_ptr<cairn::server::Follower> follower;
    std::atomic<bool> swap{false};
    if (replica) {
      cairn::server::FollowerOptions fo;
      fo.primary = opts.replica_of;
      fo.data_dir = opts.data_dir;
      fo.name = opts.replica_name;
      fo.max_frame = opts.max_frame;
      fo.apply_delay = std::chrono::microseconds(int64_t(replica_apply_delay_ms * 1000));
      fo.on_system_change = [&server] { server.UsersChanged(); };
      fo.user = opts.replica_user;
      fo.password = replica_password;
      follower = std::make_unique<cairn::server::Follower>(
          fo, server.engine(), server.commits(), replica_state, [&] {
            asio::post(server.main_context(), [&] {
              swap = true;
              server.Shutdown();
            });
          });
      server.SetFollower(follower.get(), [&] { follower->Stop(); });
    }
    if (!init_admin.empty() && replica) {
      spdlog::error("--init-admin on a replica: a replica has its primary's users; create "
                    "them there");
      return 1;
    }
    if (!init_admin.empty() && bound_port == 0) {
      if (cairn::Status s = InitAdmin(server, init_admin, admin_password_file); !s.ok()) {
        spdlog::error("--init-admin: {}", s.ToString());
        return 1;
      }
    }
    if (cairn::Status s = server.Start(); !s.ok()) {
      spdlog::error("cannot start: {}", s.ToString());
      return 1;
    }
    auto ep = server.endpoint();
    if (follower) follower->Start(ep.address().to_string() + ":" + std::to_string(ep.port()));

    asio::signal_set signals(server.main_context(), SIGINT, SIGTERM);
    std::function<void(const asio::error_code&, int)> on_signal =
        [&](const asio::error_code& ec, int signo) {
          if (ec) return;
          static bool stopping = false;
          if (stopping) {
            spdlog::warn("second signal ({}): exiting now", signo);
            std::fflush(nullptr);
            ::_exit(128 + signo);
          }
          stopping = true;
          swap = false;
          spdlog::info("signal {}: finishing in-flight requests (send it again to exit now)", signo);
          server.Shutdown();
          signals.async_wait(on_signal);
        };
    signals.async_wait(on_signal);
    // SIGHUP: the TLS certificate and key (and CA) are read again (docs/security.md).
    asio::signal_set hangups(server.main_context(), SIGHUP);
    std::function<void(const asio::error_code&, int)> on_hangup =
        [&](const asio::error_code& ec, int) {
          if (ec) return;
          if (!opts.tls.enabled()) {
            spdlog::info("SIGHUP: nothing to reload (no --tls-cert)");
          } else if (cairn::Status s = server.ReloadTls(); s.ok()) {
            spdlog::info("SIGHUP: reloaded the TLS certificate {} and key {}; new connections "
                         "use them", opts.tls.cert_file, opts.tls.key_file);
          } else {
            spdlog::error("SIGHUP: TLS reload failed, keeping the previous certificate: {}",
                          s.ToString());
          }
          hangups.async_wait(on_hangup);
        };
    hangups.async_wait(on_hangup);

    if (!port_file.empty() && bound_port == 0) {
      std::string error;
      if (!WritePortFile(port_file, ep.port(), &error)) {
        spdlog::error("cannot write the port file {}", error);
        server.Shutdown();
        server.Wait();
        return 1;
      }
    }
    spdlog::info(
        "cairnd ready: listening on {}:{} (data {}, last commit {}, {} IO threads, durability {}, "
        "max size {}, max frame {}{}{})",
        ep.address().to_string(), ep.port(), opts.data_dir, last_commit,
        opts.threads ? opts.threads : std::max(1u, std::thread::hardware_concurrency()), durability,
        Human(opts.engine.max_size), Human(opts.max_frame),
        replica ? ", replica of " + opts.replica_of : std::string(),
        opts.tls.enabled() ? std::string(", TLS only, client certificates ") +
                                 cairn::server::ClientAuthName(opts.tls.client_auth)
                           : std::string());
    if (cairn::EngineStats es = server.engine().Stats(); es.epoch_started_at_open) {
      spdlog::warn("the database in {} was copied from another node (a restored backup or a "
                   "copied data.mdb): it started epoch {} of its own from commit {}, so that "
                   "its writes can never pass for the other node's",
                   opts.data_dir, es.epoch, last_commit + 1);
    }
    server.Wait();
    bound_port = ep.port();
    if (!swap) break;
  }
  // Removed unless another cairnd has written its own port there since.
  if (!port_file.empty()) {
    unsigned in_file = 0;
    if (std::FILE* f = std::fopen(port_file.c_str(), "r")) {
      if (std::fscanf(f, "%u", &in_file) != 1) in_file = 0;
      std::fclose(f);
    }
    if (in_file == bound_port) std::remove(port_file.c_str());
  }
  spdlog::info("cairnd stopped cleanly");
  return 0;
}

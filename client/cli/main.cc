// cairn: the command line for cairnd, built on libcairn. JSON in, JSON out: every
// command that succeeds prints JSON on stdout; messages go to stderr.
//
// Exit codes (kept in step with kExitCodes below, `cairn --help` and docs/client.md).
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <deque>
#include <fstream>
#include <future>
#include <iostream>
#include <sstream>
#include <thread>

#include <fcntl.h>
#include <sys/stat.h>

#include "backup_commands.h"
#include "cairn/client/client.h"
#include "cairn/protocol/backup.h"
#include "cairn/protocol/json.h"
#include "user_commands.h"

namespace {

using namespace cairn;
using namespace cairn::client;

enum Exit : int {
  kOk = 0,
  kAbsent = 1,      // the record is absent, or a condition failed
  kUsage = 2,       // bad arguments or input
  kServer = 3,      // connection or server failure
  kConstraint = 4,  // unique violation, already exists, replace of an absent record
  kUnknown = 5,     // no such collection, index, user or role
  kBadBackup = 6,   // the backup file is damaged or not a backup (backup_commands.h)
  kDenied = 7,      // authentication failed, or the user may not do this
};

constexpr const char* kExitCodes =
    "Exit codes: 0 success; 1 the record is absent or a condition failed; 2 usage "
    "(bad arguments or input); 3 connection, server or file failure; 4 constraint violation "
    "(unique index, already exists, replace of an absent record, a unique index build "
    "over duplicates, a user or role that exists already); 5 unknown collection, index, user "
    "or role; 6 the backup file is damaged, truncated or not a cairn backup; 7 authentication "
    "failed, or permission denied.";
static_assert(int(kBadBackup) == cli::kBackupDamaged && int(kUsage) == cli::kBackupUsage &&
              int(kServer) == cli::kBackupIo);
static_assert(int(kConstraint) == cli::kUserExists && int(kUnknown) == cli::kUserUnknown);

struct Usage : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// A failure with its exit code and message (for causes that are not a server Error).
struct Failure : std::runtime_error {
  Failure(Exit c, const std::string& m) : std::runtime_error(m), code(c) {}
  Exit code;
};

Exit ExitFor(ErrorCode code) {
  switch (code) {
    case ErrorCode::kConditionFailed: return kAbsent;
    case ErrorCode::kNotFound:  // a replace of an absent record
    case ErrorCode::kAlreadyExists:
    case ErrorCode::kUniqueViolation: return kConstraint;
    case ErrorCode::kUnknownName: return kUnknown;
    case ErrorCode::kBadRequest:
    case ErrorCode::kTooLarge: return kUsage;
    case ErrorCode::kAuthFailed:
    case ErrorCode::kPermissionDenied: return kDenied;
    default: return kServer;
  }
}

// Bytes as JSON data: a string, or {"$string": "<base64>"} when they are not UTF-8
// (record keys; docs/client.md, "Bytes in JSON"). Lossless.
std::string Quote(std::string_view s) {
  std::string out;
  AppendJsonString(s, &out);
  return out;
}

// Text for people (names, messages) as a JSON string; bytes that are not UTF-8 as \xNN.
std::string Text(std::string_view s) {
  std::string out;
  AppendJsonText(s, &out);
  return out;
}

// Every message goes to stderr through here: whatever bytes a key, a server message or an
// argument holds, what is printed is valid UTF-8 without control characters.
void Note(const std::string& message) {
  std::fprintf(stderr, "cairn: %s\n", PrintableText(message).c_str());
}

std::string RecordJson(const Record& r) {
  std::string out = "{\"key\":" + Quote(r.key) + ",\"version\":" + std::to_string(r.version);
  if (r.kind == ValueKind::kDocument) {
    out += ",\"document\":" + FlexToJson(r.value) + "}";
  } else {
    out += ",\"raw_base64\":\"" + Base64(r.value) + "\"}";
  }
  return out;
}

std::string IndexJson(const IndexInfo& ix) {
  std::string out = "{\"name\":" + Text(ix.spec.name) + ",\"fields\":[";
  for (size_t j = 0; j < ix.spec.fields.size(); j++) out += (j ? "," : "") + Text(ix.spec.fields[j]);
  out += "],\"unique\":" + std::string(ix.spec.unique ? "true" : "false") + ",\"state\":" + Text(IndexStateName(ix.state));
  if (!ix.error.empty()) out += ",\"error\":" + Text(ix.error);
  return out + "}";
}

Document ParseDoc(const std::string& json, const std::string& what = "the document") {
  try {
    return Document::FromJson(json);
  } catch (const Error& e) {
    throw Usage(what + ": " + e.message());
  }
}

// The keys of a JSON object; a misspelt one is refused by name, never ignored (a
// misspelt "conditions" would otherwise commit the operations unconditionally).
void CheckKeys(const Value& obj, std::initializer_list<std::string_view> allowed,
               const std::string& where) {
  if (!obj.is_map()) throw Usage(where + " must be a JSON object");
  auto keys = obj.ref().AsMap().Keys();
  for (size_t i = 0; i < keys.size(); i++) {
    std::string key = keys[i].AsString().str();
    if (std::find(allowed.begin(), allowed.end(), key) != allowed.end()) continue;
    std::string list;
    for (std::string_view a : allowed) list += (list.empty() ? "" : ", ") + std::string(a);
    throw Usage("unknown key '" + key + "' in " + where + " (expected: " + list + ")");
  }
}

Scalar ParseScalar(const std::string& json, const std::string& flag) {
  try {
    return ScalarFromJson(json);
  } catch (const Error& e) {
    // A bare word is taken as a string: --eq alice is --eq '"alice"'.
    if (!json.empty() && json.find_first_of("\"{}[],:") == std::string::npos) return json;
    throw Usage(flag + ": " + e.message());
  }
}

// --eq takes one JSON value, or a JSON array of values for a compound index's prefix.
std::vector<Scalar> ParseScalars(const std::string& json) {
  if (!json.empty() && json[0] == '[') {
    Document holder = ParseDoc("{\"v\": " + json + "}", "--eq");
    std::vector<Scalar> out;
    Value arr = holder["v"];
    for (size_t i = 0; i < arr.size(); i++) out.push_back(ParseScalar(arr[i].ToJson(), "--eq"));
    return out;
  }
  return {ParseScalar(json, "--eq")};
}

// A string bound that reads as a number orders after every number in an index, so it
// matches none of a numeric field's values: say so rather than return nothing quietly.
void WarnIfNumericString(const Scalar& v, const std::string& flag) {
  const std::string* s = std::get_if<std::string>(&v);
  if (!s || s->empty()) return;
  char* end = nullptr;
  std::strtod(s->c_str(), &end);
  if (end != s->c_str() + s->size()) return;
  std::fprintf(stderr,
               "cairn: warning: %s is the string \"%s\", not a number; in an index every "
               "string orders after every number (null < false < true < numbers < strings < "
               "blobs), so it matches no numeric value. For the number, write %s %s\n",
               flag.c_str(), s->c_str(), flag.c_str(), s->c_str());
}

std::string TxnResultJson(const TxnResult& r) {
  std::string out = "{\"commit\":" + std::to_string(r.commit) + ",\"results\":[";
  for (size_t i = 0; i < r.results.size(); i++) {
    const OpResult& op = r.results[i];
    if (i) out += ",";
    out += "{\"found\":" + std::string(op.found ? "true" : "false") +
           ",\"version\":" + std::to_string(op.version) + ",\"count\":" + std::to_string(op.count);
    if (!op.records.empty()) {
      out += ",\"records\":[";
      for (size_t j = 0; j < op.records.size(); j++) out += (j ? "," : "") + RecordJson(op.records[j]);
      out += "]";
    }
    if (!op.continuation.empty()) out += ",\"continuation_base64\":\"" + Base64(op.continuation) + "\"";
    out += "}";
  }
  return out + "]}";
}

// `cairn txn` reads {"conditions": [...], "ops": [...]} from stdin. `names` gets, for
// each condition and operation, how the user wrote it, for error messages.
struct TxnNames {
  std::vector<std::string> conditions, ops;
};

Txn ParseTxn(const std::string& json, TxnNames* names) {
  Document d = ParseDoc(json, "the transaction");
  CheckKeys(d.root(), {"conditions", "ops"}, "the transaction");
  Txn t;
  Value conds = d["conditions"];
  if (conds.exists() && !conds.is_array()) throw Usage("\"conditions\" must be an array");
  for (size_t i = 0; i < conds.size(); i++) {
    Value c = conds[i];
    std::string where = "conditions[" + std::to_string(i) + "]";
    CheckKeys(c, {"kind", "collection", "key", "version"}, where);
    std::string kind = c["kind"].AsString(), coll = c["collection"].AsString(),
                key = c["key"].AsString();
    if (coll.empty() || key.empty()) throw Usage(where + " needs \"collection\" and \"key\"");
    names->conditions.push_back(where + " (" + kind + " " + coll + "/" + key + ")");
    if (kind == "absent") {
      t.IfAbsent(coll, key);
    } else if (kind == "present") {
      t.IfPresent(coll, key);
    } else if (kind == "version") {
      if (!c["version"].is_int()) throw Usage(where + ": a version condition needs \"version\"");
      t.IfVersion(coll, key, c["version"].AsUint());
    } else {
      throw Usage(where + ": \"kind\" must be absent, present or version, not '" + kind + "'");
    }
  }
  Value ops = d["ops"];
  if (!ops.is_array() || ops.size() == 0) throw Usage("a transaction needs \"ops\": [...]");
  for (size_t i = 0; i < ops.size(); i++) {
    Value o = ops[i];
    std::string where = "ops[" + std::to_string(i) + "]";
    CheckKeys(o, {"op", "collection", "key", "document"}, where);
    std::string op = o["op"].AsString(), coll = o["collection"].AsString(), key = o["key"].AsString();
    if (coll.empty()) throw Usage(where + " needs a \"collection\"");
    bool keyed = op != "count";
    if (keyed && key.empty()) throw Usage(where + " needs a \"key\"");
    bool has_doc = op == "put" || op == "insert" || op == "replace";
    if (!has_doc && o["document"].exists()) throw Usage(where + ": a " + op + " takes no \"document\"");
    names->ops.push_back(where + " (" + op + " " + coll + (keyed ? "/" + key : "") + ")");
    auto doc = [&] {
      if (!o["document"].is_map()) throw Usage(where + " needs a \"document\" object");
      return Document::FromJson(o["document"].ToJson());
    };
    if (op == "get") {
      t.Get(coll, key);
    } else if (op == "put") {
      t.Put(coll, key, doc());
    } else if (op == "insert") {
      t.Insert(coll, key, doc());
    } else if (op == "replace") {
      t.Replace(coll, key, doc());
    } else if (op == "delete") {
      t.Delete(coll, key);
    } else if (op == "count") {
      t.Count(coll);
    } else {
      throw Usage(where + ": \"op\" must be get, put, insert, replace, delete or count, not '" +
                  op + "'");
    }
  }
  return t;
}

struct LoadOptions {
  std::string collection, file, key_field;
  size_t batch = 500;
  bool atomic = false;
};

// Bulk load: one JSON object per line. A line that cannot be loaded is reported with its
// line number, the rest goes on (or, with --atomic, nothing is written at all).
int Load(Client& db, const LoadOptions& o) {
  // Streamed: memory holds the batches in flight, not the file.
  std::ifstream f;
  if (o.file != "-") {
    f.open(o.file);
    if (!f) throw Usage("cannot read " + o.file);
  }
  std::istream& in = o.file == "-" ? std::cin : f;
  const std::string name = o.file == "-" ? "<stdin>" : o.file;
  bool tty = isatty(2);
  auto start = std::chrono::steady_clock::now();
  auto last_print = start;
  uint64_t loaded = 0, failed = 0;
  Exit first_failure = kOk;
  auto reject = [&](size_t line, const std::string& why, Exit code) {
    std::fprintf(stderr, "%s%s:%zu: %s\n", tty ? "\r" : "", PrintableText(name).c_str(), line,
                 PrintableText(why).c_str());
    failed++;
    if (first_failure == kOk) first_failure = code;
  };

  struct Line {
    size_t number;
    std::string key;
    Document doc;
  };
  struct Batch {
    std::vector<Line> lines;
    std::future<TxnResult> result;
  };
  auto send = [&](std::vector<Line> lines) {
    Txn txn;
    for (const Line& l : lines) txn.Put(o.collection, l.key, l.doc);
    return Batch{std::move(lines), db.AsyncCommit(txn, asio::use_future)};
  };
  std::deque<Batch> inflight;  // a few batches pipelined
  auto drain = [&](size_t keep) {
    while (inflight.size() > keep) {
      Batch b = std::move(inflight.front());
      inflight.pop_front();
      try {
        b.result.get();
        loaded += b.lines.size();
      } catch (const Error& e) {
        if (o.atomic || ExitFor(e.code()) == kServer || ExitFor(e.code()) == kUnknown) throw;
        // Find the lines at fault: each alone, in order.
        for (Line& l : b.lines) {
          try {
            db.Put(o.collection, l.key, l.doc);
            loaded++;
          } catch (const Error& one) {
            if (ExitFor(one.code()) == kServer) throw;
            reject(l.number, "key " + Quote(l.key) + ": " + one.what(), ExitFor(one.code()));
          }
        }
      }
      auto now = std::chrono::steady_clock::now();
      if (tty && now - last_print > std::chrono::milliseconds(250)) {
        double s = std::chrono::duration<double>(now - start).count();
        std::fprintf(stderr, "\rloaded %llu records (%.0f/s)", (unsigned long long)loaded, loaded / s);
        last_print = now;
      }
    }
  };

  std::vector<Line> batch;
  std::string line;
  size_t line_no = 0;
  while (std::getline(in, line)) {
    line_no++;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    Document d;
    try {
      d = Document::FromJson(line);
    } catch (const Error& e) {
      reject(line_no, e.message(), kUsage);
      continue;
    }
    Value k = d[o.key_field];
    std::string key = k.is_string() ? k.AsString() : k.is_number() ? k.ToJson() : "";
    if (key.empty()) {
      reject(line_no, "no key field '" + o.key_field + "' (a string or a number)", kUsage);
      continue;
    }
    batch.push_back(Line{line_no, std::move(key), std::move(d)});
    if (!o.atomic && batch.size() == o.batch) {
      inflight.push_back(send(std::move(batch)));
      batch.clear();
      drain(4);
    }
  }
  if (o.atomic && failed > 0) {
    throw Failure(kUsage, "nothing loaded: " + std::to_string(failed) +
                              " line(s) cannot be loaded and --atomic loads all or nothing");
  }
  if (!batch.empty()) inflight.push_back(send(std::move(batch)));
  try {
    drain(0);
  } catch (const Error& e) {
    if (o.atomic && e.code() == ErrorCode::kTooLarge) {
      throw Failure(kUsage, "nothing loaded: the file does not fit in one transaction (" +
                                e.message() + "); load it without --atomic");
    }
    if (o.atomic) throw Failure(ExitFor(e.code()), std::string("nothing loaded: ") + e.what());
    throw;
  }
  double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (tty) std::fprintf(stderr, "\rloaded %llu records in %.2f s\n", (unsigned long long)loaded, s);
  std::printf("{\"loaded\":%llu,\"failed\":%llu}\n", (unsigned long long)loaded,
              (unsigned long long)failed);
  return first_failure;
}

// The command the user meant, for a misspelt one.
std::string Nearest(const std::string& word, const std::vector<std::string>& names) {
  auto distance = [](const std::string& a, const std::string& b) {
    std::vector<size_t> prev(b.size() + 1), cur(b.size() + 1);
    for (size_t j = 0; j <= b.size(); j++) prev[j] = j;
    for (size_t i = 1; i <= a.size(); i++) {
      cur[0] = i;
      for (size_t j = 1; j <= b.size(); j++) {
        cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] != b[j - 1])});
      }
      std::swap(prev, cur);
    }
    return prev[b.size()];
  };
  std::string best;
  size_t best_d = SIZE_MAX;
  for (const std::string& n : names) {
    size_t d = distance(word, n);
    if (d < best_d) best_d = d, best = n;
  }
  return best_d <= std::max<size_t>(2, word.size() / 3) ? best : "";
}

// One page, or every page, of a scan or query; prints records as they come and, after a
// page that more may follow, the token that continues it.
struct Paging {
  uint32_t limit = 0;
  std::string after;  // base64 continuation
  bool all = false, page_info = false;
};

int Page(Client& db, const Paging& p, const std::function<void(Txn&, std::string_view)>& op) {
  std::string continuation;
  if (!p.after.empty()) {
    if (!DecodeBase64(p.after, &continuation) || continuation.empty()) {
      throw Usage("--after takes the token a previous page printed");
    }
  }
  const bool one_page = p.limit != 0 && !p.all;
  uint64_t printed = 0;
  while (true) {
    Txn t;
    op(t, continuation);
    TxnResult r = db.Commit(t);
    const OpResult& res = r.results.at(0);
    for (const Record& rec : res.records) std::printf("%s\n", RecordJson(rec).c_str());
    printed += res.records.size();
    continuation = res.continuation;
    if (continuation.empty() || one_page) break;
  }
  if (p.page_info) {
    std::printf("{\"next\":%s}\n",
                continuation.empty() ? "null" : Text(Base64(continuation)).c_str());
  } else if (!continuation.empty()) {
    std::fflush(stdout);
    std::fprintf(stderr, "cairn: more records follow: repeat with --after %s\n",
                 Base64(continuation).c_str());
  }
  return kOk;
}

// --- Streams: watch, digest.

// Set by SIGINT and SIGTERM (to the signal's number) while a stream runs: the stream
// ends cleanly.
volatile std::sig_atomic_t g_stop = 0;

void OnStopSignal(int sig) { g_stop = sig; }

// Stops on SIGINT and SIGTERM instead of dying, and turns SIGPIPE into EPIPE from write
// (a reader such as `head` went away).
void HandleStopSignals() {
  struct sigaction sa {};
  sa.sa_handler = OnStopSignal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  std::signal(SIGPIPE, SIG_IGN);
}

// Waits for a stream call, waking up for a stop signal; nullopt if one came.
template <typename T>
std::optional<T> WaitOrStop(std::future<T>& f) {
  while (f.wait_for(std::chrono::milliseconds(100)) != std::future_status::ready) {
    if (g_stop) return std::nullopt;
  }
  return f.get();
}

// Writes a line to stdout and flushes it; false when the reader has gone (EPIPE).
bool PrintLine(const std::string& line) {
  if (std::fputs(line.c_str(), stdout) >= 0 && std::fputc('\n', stdout) != EOF &&
      std::fflush(stdout) == 0) {
    return true;
  }
  if (errno == EPIPE) return false;
  throw Failure(kServer, std::string("cannot write to standard output: ") + std::strerror(errno));
}

// One change as a JSON line: {"commit", "collection", "op", "key", "value", "index",
// "time_ms"}, with only the members that apply to its kind (docs/client.md, "watch").
std::string ChangeJson(const Change& c) {
  std::string out = "{\"commit\":" + std::to_string(c.commit) +
                    ",\"collection\":" + Text(c.collection) + ",\"op\":" +
                    Text(ChangeKindName(c.kind));
  if (ChangeKindName(c.kind) == "unknown") out += ",\"kind\":" + std::to_string(int(c.kind));
  if (c.kind == Change::Kind::kPut || c.kind == Change::Kind::kDelete) out += ",\"key\":" + Quote(c.key);
  if (c.kind == Change::Kind::kPut) {
    out += ",\"value\":";
    if (c.value_kind == ValueKind::kRaw) {
      out += "{\"$bytes\":\"" + Base64(c.value) + "\"}";
    } else {
      try {
        out += Document::FromBytes(c.value).ToJson();
      } catch (const Error&) {
        throw Failure(kServer, "commit " + std::to_string(c.commit) + ": the server sent a put of " +
                                   Quote(c.key) + " whose value is not a document");
      }
    }
  }
  if (c.index) {
    out += ",\"index\":{\"name\":" + Text(c.index->name);
    if (c.kind == Change::Kind::kCreateIndex) {
      out += ",\"fields\":[";
      for (size_t i = 0; i < c.index->fields.size(); i++) {
        out += (i ? "," : "") + Text(c.index->fields[i]);
      }
      out += "],\"unique\":" + std::string(c.index->unique ? "true" : "false");
    }
    out += "}";
  }
  return out + ",\"time_ms\":" + std::to_string(c.time_ms) + "}";
}

struct WatchArgs {
  std::string collection, prefix;
  uint64_t from = 0, count = 0;
  bool all_collections = false;
};

// `cairn watch`: the changes as JSON lines, as they happen, until a stop signal, the
// reader's end (EPIPE), --count changes, or an error (which says where to resume).
int WatchChanges(Client& db, const WatchArgs& a) {
  HandleStopSignals();
  Watcher w = db.Watch({.collection = a.all_collections ? "" : a.collection,
                        .prefix = a.prefix,
                        .from = a.from});
  uint64_t printed = 0;
  try {
    while (true) {
      std::future<WatchBatch> next = w.AsyncNext(asio::use_future);
      std::optional<WatchBatch> b = WaitOrStop(next);
      if (!b) {
        if (w.through() > 0) Note("stopped; to go on from here: --from " + std::to_string(w.through() + 1));
        return kOk;
      }
      for (const Change& c : b->changes) {
        if (!PrintLine(ChangeJson(c))) return kOk;
        if (a.count && ++printed == a.count) return kOk;
      }
    }
  } catch (const Error& e) {
    if (e.code() == ErrorCode::kLogTruncated) {
      // At the start (--from), or later: a watcher that fell behind the log's retention.
      uint64_t wanted = a.from > w.through() ? a.from : w.through() + 1;
      throw Failure(kServer, "commit " + std::to_string(wanted) +
                                 " is no longer in the server's change log; the oldest it keeps is " +
                                 std::to_string(e.log_first()) + ": run again with --from " +
                                 std::to_string(e.log_first()) +
                                 " (what came before is gone), or without --from to watch new commits");
    }
    std::string resume = w.through() > 0 || a.from > 0
                             ? "; to go on from where it stopped: --from " + std::to_string(w.through() + 1)
                             : "";
    throw Failure(ExitFor(e.code()), std::string(ErrorCodeName(e.code())) + ": " + e.message() + resume);
  }
}

// --- backup.

// Where a backup is written: FILE.partial, renamed to FILE once it is whole and durable
// (so that a file named FILE is always a complete backup), or standard output.
class BackupTarget {
 public:
  explicit BackupTarget(std::string file) : file_(std::move(file)) {}
  ~BackupTarget() { Abandon(); }

  bool to_stdout() const { return file_ == "-"; }
  std::string name() const { return to_stdout() ? "standard output" : partial(); }

  int Open() {
    if (to_stdout()) {
      if (isatty(1)) {
        throw Usage("standard output is a terminal: redirect it (cairn backup - > FILE), or "
                    "give a FILE");
      }
      return 1;
    }
    // O_EXCL: two backups to one FILE at once must not write into each other's file.
    fd_ = ::open(partial().c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd_ < 0) {
      int err = errno;
      if (err == EEXIST) {
        throw Failure(kServer, partial() + " exists: another backup to " + file_ +
                                   " is running, or one was killed; remove it if none runs");
      }
      throw Failure(kServer, "cannot create " + partial() + ": " + std::strerror(err));
    }
    created_ = true;
    return fd_;
  }

  // The backup is whole (BackupWriter::End fsynced it): FILE.partial becomes FILE, and
  // the rename is made durable in the folder.
  void Publish() {
    if (to_stdout()) return;
    int rc = ::close(fd_);
    fd_ = -1;
    if (rc != 0) throw Failure(kServer, "cannot close " + partial() + ": " + std::strerror(errno));
    if (::rename(partial().c_str(), file_.c_str()) != 0) {
      throw Failure(kServer, "cannot rename " + partial() + " to " + file_ + ": " +
                                 std::strerror(errno));
    }
    created_ = false;
    size_t slash = file_.rfind('/');
    std::string dir = slash == std::string::npos ? "." : slash == 0 ? "/" : file_.substr(0, slash);
    int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0 || ::fsync(dfd) != 0) {
      int err = errno;
      if (dfd >= 0) ::close(dfd);
      throw Failure(kServer, "the backup " + file_ + " is complete, but its folder " + dir +
                                 " cannot be synced (" + std::strerror(err) +
                                 "): it may not survive a crash");
    }
    ::close(dfd);
  }

  // A backup that did not complete leaves nothing behind.
  void Abandon() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
    if (created_) ::unlink(partial().c_str());
    created_ = false;
  }

 private:
  std::string partial() const { return file_ + ".partial"; }
  std::string file_;
  int fd_ = -1;
  bool created_ = false;
};

// "MB done, MB/s" on stderr, at most four times a second, when stderr is a terminal.
class Progress {
 public:
  Progress() : tty_(isatty(2)), start_(std::chrono::steady_clock::now()), last_(start_) {}
  void Show(uint64_t bytes, bool final = false) {
    if (!tty_) return;
    auto now = std::chrono::steady_clock::now();
    if (!final && now - last_ < std::chrono::milliseconds(250)) return;
    last_ = now;
    std::fprintf(stderr, "\rbackup: %.1f MB, %.1f MB/s%s", bytes / 1e6, bytes / 1e6 / seconds(),
                 final ? "\n" : "   ");
  }
  double seconds() const {
    double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    return s > 0 ? s : 1e-9;
  }

 private:
  bool tty_;
  std::chrono::steady_clock::time_point start_, last_;
};

std::string BackupFailed(const BackupTarget& target) {
  return target.to_stdout() ? "backup failed; what went to standard output is incomplete (it "
                              "has no trailer: verify-backup and restore refuse it): "
                            : "backup failed; no file was written: ";
}

// Fails the backup with the writer's error (the file or pipe could not be written).
void Check(const BackupStatus& s) {
  if (!s.ok()) throw Failure(kServer, s.message());
}

// `cairn backup FILE|-`: the server's snapshot, streamed into a backup file (docs/
// storage.md, "Backups") as it arrives, every chunk checked twice (by the reader and the
// writer); nothing is left under FILE unless the backup is whole.
int Backup(Client& db, const std::string& file) {
  HandleStopSignals();
  BackupTarget target(file);
  int fd = target.Open();
  BackupWriter writer(fd, target.name());
  SnapshotReader reader = db.Snapshot();
  Progress progress;
  auto next = [&]() -> SnapshotPart {
    std::future<SnapshotPart> f = reader.AsyncNext(asio::use_future);
    std::optional<SnapshotPart> part = WaitOrStop(f);
    if (!part) {
      target.Abandon();
      Note(target.to_stdout() ? "interrupted: the backup on standard output is incomplete"
                              : "interrupted: no backup was written");
      // The caller learns how it ended, as from any program the signal stopped.
      int sig = g_stop;
      std::signal(sig, SIG_DFL);
      std::raise(sig);
      throw Failure(kServer, "interrupted");
    }
    return std::move(*part);
  };
  try {
    SnapshotBegin begin = std::get<SnapshotBegin>(next());
    if (begin.format != kSnapshotFormatLmdb) {
      throw Failure(kServer, "the server sends snapshots of format " + std::to_string(begin.format) +
                                 ", which this cairn cannot back up (it knows format " +
                                 std::to_string(kSnapshotFormatLmdb) + "): use the server's version");
    }
    std::vector<BackupEpoch> history;
    for (const EpochStart& e : begin.history) history.push_back({e.epoch, e.id, e.first_commit});
    Check(writer.Begin(begin.commit, begin.format, history));
    while (true) {
      SnapshotPart part = next();
      if (auto* c = std::get_if<SnapshotChunk>(&part)) {
        Check(writer.Chunk(c->offset, c->data, c->checksum));
        progress.Show(writer.data_bytes());
        continue;
      }
      const SnapshotEnd& end = std::get<SnapshotEnd>(part);
      Check(writer.End(end.size, end.checksum));
      break;
    }
    target.Publish();
    double s = progress.seconds();
    progress.Show(writer.data_bytes(), true);
    char rate[96];
    std::snprintf(rate, sizeof rate, "\"seconds\":%.3f,\"mb_per_s\":%.1f", s,
                  writer.data_bytes() / 1e6 / s);
    std::string summary = "{\"file\":" + Text(target.to_stdout() ? "-" : file) +
                          ",\"commit\":" + std::to_string(begin.commit) +
                          ",\"size\":" + std::to_string(writer.data_bytes()) +
                          ",\"file_bytes\":" + std::to_string(writer.file_bytes()) +
                          ",\"chunks\":" + std::to_string(writer.chunks()) + "," + rate + "}";
    if (target.to_stdout()) {
      Note("backup of commit " + std::to_string(begin.commit) + " written: " + summary);
    } else {
      std::printf("%s\n", summary.c_str());
    }
    return kOk;
  } catch (const Error& e) {
    target.Abandon();
    throw Failure(ExitFor(e.code()), BackupFailed(target) + std::string(ErrorCodeName(e.code())) +
                                         ": " + e.message());
  } catch (const Failure& e) {
    target.Abandon();
    throw Failure(e.code, BackupFailed(target) + e.what());
  }
}

struct DigestArgs {
  uint64_t at = 0;
  double wait_s = 0;
  bool json = false;
};

// `cairn digest`: the content digest at the server's last commit or at --at.
int PrintDigest(Client& db, const DigestArgs& a) {
  auto wait = std::chrono::milliseconds(int64_t(a.wait_s * 1000));
  DatabaseDigest d = db.Digest(a.at, wait);
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", (unsigned long long)d.digest);
  if (a.json) {
    std::printf("{\"commit\":%llu,\"digest\":\"%s\",\"collections\":%llu,\"records\":%llu,"
                "\"index_entries\":%llu}\n",
                (unsigned long long)d.commit, hex, (unsigned long long)d.collections,
                (unsigned long long)d.records, (unsigned long long)d.index_entries);
  } else {
    std::printf("commit %llu digest %s (%llu collections, %llu records, %llu index entries)\n",
                (unsigned long long)d.commit, hex, (unsigned long long)d.collections,
                (unsigned long long)d.records, (unsigned long long)d.index_entries);
  }
  return kOk;
}

// --- Replication: `cairn replicas`, `cairn promote`.

std::string ReplicasJson(const ReplicasInfo& r) {
  std::string rows;
  for (const ReplicaStatus& s : r.replicas) {
    rows += (rows.empty() ? "" : ",") + std::string("{\"name\":") + Text(s.name) +
            ",\"address\":" + Text(s.address) + ",\"applied\":" + std::to_string(s.applied) +
            ",\"lag_commits\":" + std::to_string(s.lag_commits) +
            ",\"lag_ms\":" + std::to_string(s.lag_ms) +
            ",\"connected\":" + (s.connected ? "true" : "false") + "}";
  }
  std::string out = "{\"role\":" + Text(r.role);
  if (!r.primary.empty()) out += ",\"primary\":" + Text(r.primary);
  if (!r.error.empty()) out += ",\"error\":" + Text(r.error);
  out += ",\"epoch\":" + std::to_string(r.epoch) + ",\"last_commit\":" +
         std::to_string(r.last_commit) + ",\"replicas\":[" + rows + "]}";
  return out;
}

// A table for people: one line per follower.
void PrintReplicasTable(const ReplicasInfo& r) {
  std::printf("%s, epoch %llu, last commit %llu", r.role.c_str(), (unsigned long long)r.epoch,
              (unsigned long long)r.last_commit);
  if (!r.primary.empty()) std::printf(", following %s", r.primary.c_str());
  std::printf("\n");
  if (!r.error.empty()) std::printf("replication stopped: %s\n", r.error.c_str());
  if (r.replicas.empty()) {
    std::printf("no replicas\n");
    return;
  }
  std::printf("%-24s %-22s %12s %12s %10s %s\n", "NAME", "ADDRESS", "APPLIED", "LAG_COMMITS",
              "LAG_MS", "CONNECTED");
  for (const ReplicaStatus& s : r.replicas) {
    std::printf("%-24s %-22s %12llu %12llu %10llu %s\n", s.name.c_str(), s.address.c_str(),
                (unsigned long long)s.applied, (unsigned long long)s.lag_commits,
                (unsigned long long)s.lag_ms, s.connected ? "yes" : "no");
  }
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"cairn: command line for cairnd (JSON in, JSON out)"};
  app.footer(kExitCodes);
  app.require_subcommand(1);
  app.set_version_flag("--version", "cairn " CAIRN_VERSION);
  // Options of the top level (--addr) also work after the subcommand.
  app.fallthrough();
  const char* env = std::getenv("CAIRN_ADDR");
  std::string addr = env && *env ? env : "127.0.0.1:7420";
  app.add_option("--addr", addr, "HOST:PORT of cairnd (or $CAIRN_ADDR)")->capture_default_str();
  // TLS (docs/security.md, "TLS"): the files also from $CAIRN_TLS_CA, $CAIRN_TLS_CERT,
  // $CAIRN_TLS_KEY, and the name from $CAIRN_TLS_SERVER_NAME; any of them turns TLS on.
  bool tls = false;
  auto env_or = [](const char* name) {
    const char* v = std::getenv(name);
    return std::string(v ? v : "");
  };
  std::string tls_ca = env_or("CAIRN_TLS_CA"), tls_cert = env_or("CAIRN_TLS_CERT"),
              tls_key = env_or("CAIRN_TLS_KEY"), tls_server_name = env_or("CAIRN_TLS_SERVER_NAME");
  app.add_flag("--tls", tls, "Connect with TLS, checking the server's certificate against the "
                             "system's CAs (or --tls-ca)");
  app.add_option("--tls-ca", tls_ca, "CA certificates (PEM) to check the server's against "
                                     "(or $CAIRN_TLS_CA); implies --tls");
  app.add_option("--tls-cert", tls_cert, "Client certificate (PEM) for mutual TLS (or "
                                         "$CAIRN_TLS_CERT); implies --tls");
  app.add_option("--tls-key", tls_key, "The key of --tls-cert (PEM; or $CAIRN_TLS_KEY)");
  app.add_option("--tls-server-name", tls_server_name,
                 "The name the server's certificate must have (default: the host of --addr; or "
                 "$CAIRN_TLS_SERVER_NAME); implies --tls");
  // Authentication (docs/security.md): --user, --password-file, or $CAIRN_USER and
  // $CAIRN_PASSWORD_FILE; never the password itself on the command line.
  cli::LoginArgs login;
  cli::AddLoginOptions(app, &login);

  std::string coll, key, json, index, fields, from, to, eq, file = "-", key_field = "id";
  std::optional<uint64_t> if_version;
  Paging paging;
  size_t batch = 500;
  bool unique = false, reverse = false, if_not_exists = false, if_exists = false,
       no_wait = false, atomic = false, key_base64 = false;
  // A key that is not UTF-8 (scan prints it {"$string": "<base64>"}) is given in base64.
  auto add_key_base64 = [&](CLI::App* c, const char* what) {
    c->add_flag("--key-base64", key_base64, what);
  };

  auto* ping = app.add_subcommand("ping", "Check that the server answers");
  bool replicas_json = false;
  auto* replicas = app.add_subcommand(
      "replicas", "This node's role and the replicas following it (name, address, applied "
                  "commit, lag in commits and ms, connected)");
  replicas->add_flag("--json", replicas_json, "Print one JSON object instead of a table");
  auto* promote = app.add_subcommand(
      "promote", "Make this replica a primary with a new epoch (manual failover; "
                 "docs/replication.md says what to do after it)");
  auto* stats = app.add_subcommand("stats", "Server statistics");
  auto* verify = app.add_subcommand(
      "verify", "Check the database's consistency (indexes against records, documents, the "
                "change log); exits 3 if it finds problems");
  auto* create_coll = app.add_subcommand("create-collection", "Create a collection");
  create_coll->add_option("COLLECTION", coll)->required();
  create_coll->add_flag("--if-not-exists", if_not_exists, "Succeed if it exists already");
  auto* drop_coll = app.add_subcommand("drop-collection", "Drop a collection and its data");
  drop_coll->add_option("COLLECTION", coll)->required();
  drop_coll->add_flag("--if-exists", if_exists, "Succeed if it does not exist");
  auto* list = app.add_subcommand("collections", "List collections, one JSON line each");
  auto* create_ix = app.add_subcommand(
      "create-index", "Create a secondary index; waits until it is built over existing records");
  create_ix->add_option("COLLECTION", coll)->required();
  create_ix->add_option("INDEX", index)->required();
  create_ix->add_option("FIELDS", fields, "FIELD[,FIELD...], dotted paths")->required();
  create_ix->add_flag("--unique", unique, "One record per value");
  create_ix->add_flag("--if-not-exists", if_not_exists, "Succeed if an index of that name exists");
  create_ix->add_flag("--no-wait", no_wait, "Return once the index exists, while it builds");
  auto* drop_ix = app.add_subcommand("drop-index", "Drop an index");
  drop_ix->add_option("COLLECTION", coll)->required();
  drop_ix->add_option("INDEX", index)->required();
  drop_ix->add_flag("--if-exists", if_exists, "Succeed if it does not exist");
  auto* indexes = app.add_subcommand("indexes", "List a collection's indexes");
  indexes->add_option("COLLECTION", coll)->required();

  std::vector<CLI::App*> writes;
  for (const char* name : {"put", "insert", "replace"}) {
    auto* w = app.add_subcommand(name, std::string(name) == "put" ? "Write a record" :
                                       std::string(name) == "insert" ? "Write a new record (fails if present)" :
                                       "Overwrite an existing record (fails if absent)");
    w->add_option("COLLECTION", coll)->required();
    w->add_option("KEY", key)->required();
    w->add_option("JSON", json, "The document, a JSON object")->required();
    if (std::string(name) != "insert") w->add_option("--if-version", if_version, "Only if the record is at this version");
    add_key_base64(w, "KEY is base64 (for a key that is not UTF-8)");
    writes.push_back(w);
  }
  auto* get = app.add_subcommand("get", "Read a record");
  get->add_option("COLLECTION", coll)->required();
  get->add_option("KEY", key)->required();
  add_key_base64(get, "KEY is base64 (for a key that is not UTF-8)");
  auto* del = app.add_subcommand("delete", "Delete a record");
  del->add_option("COLLECTION", coll)->required();
  del->add_option("KEY", key)->required();
  del->add_option("--if-version", if_version, "Only if the record is at this version");
  add_key_base64(del, "KEY is base64 (for a key that is not UTF-8)");
  auto add_paging = [&](CLI::App* c) {
    c->add_option("--limit", paging.limit,
                  "One page of at most this many; the token for the next page follows");
    c->add_option("--after", paging.after, "Continue from the token a previous page printed");
    c->add_flag("--all", paging.all, "Every page (the default without --limit)");
    c->add_flag("--page-info", paging.page_info,
                "End with {\"next\": TOKEN} (or null) on stdout instead of a note on stderr");
    c->add_flag("--reverse", reverse, "High to low");
  };
  auto* scan = app.add_subcommand("scan", "Records in key order, one JSON line each");
  scan->add_option("COLLECTION", coll)->required();
  scan->add_option("--from", from, "First key (inclusive)");
  scan->add_option("--to", to, "Last key (inclusive)");
  add_key_base64(scan, "--from and --to are base64 (for keys that are not UTF-8)");
  add_paging(scan);
  auto* query = app.add_subcommand("query", "Records by secondary index, one JSON line each");
  query->add_option("COLLECTION", coll)->required();
  query->add_option("INDEX", index)->required();
  query->add_option("--eq", eq, "Equal to this JSON value (an array: a compound prefix)");
  query->add_option("--from", from, "Lowest value, JSON (inclusive); after --eq, of the next field");
  query->add_option("--to", to, "Highest value, JSON (inclusive); after --eq, of the next field");
  add_paging(query);
  auto* count = app.add_subcommand("count", "Count records (of a key range, or of an index query)");
  count->add_option("COLLECTION", coll)->required();
  count->add_option("--index", index, "Count an index query instead of keys");
  count->add_option("--eq", eq, "With --index: equal to this JSON value");
  count->add_option("--from", from, "First key (or, with --index, lowest JSON value)");
  count->add_option("--to", to, "Last key (or, with --index, highest JSON value)");
  add_key_base64(count, "--from and --to are base64 keys (not with --index)");
  auto* txn = app.add_subcommand("txn", "Run a transaction read as JSON from stdin: "
                                         "{\"conditions\": [...], \"ops\": [...]}");
  auto* load = app.add_subcommand("load", "Bulk-load JSON lines into a collection; prints "
                                          "{\"loaded\": N, \"failed\": M}");
  load->add_option("COLLECTION", coll)->required();
  load->add_option("FILE", file, "JSON lines; - (the default) reads standard input");
  load->add_option("--key-field", key_field, "Field holding each record's key")->capture_default_str();
  load->add_option("--batch", batch, "Records per transaction")->capture_default_str()->check(CLI::Range(1, 100000));
  load->add_flag("--atomic", atomic, "All or nothing, in one transaction");
  WatchArgs watch_args;
  auto* watch = app.add_subcommand(
      "watch", "Print changes as they are committed, one JSON line each (until Ctrl-C)");
  watch->add_option("COLLECTION", watch_args.collection, "The collection to follow");
  watch->add_flag("--all-collections", watch_args.all_collections,
                  "Every collection, catalog changes included (instead of COLLECTION)");
  watch->add_option("--from", watch_args.from,
                    "First commit to print (default: the commits from now on)");
  watch->add_option("--prefix", watch_args.prefix, "Only keys that start with this");
  add_key_base64(watch, "--prefix is base64 (for bytes that are not UTF-8)");
  watch->add_option("--count", watch_args.count, "Stop after this many changes");
  DigestArgs digest_args;
  auto* digest = app.add_subcommand(
      "digest", "Content digest of the database (equal digests at one commit: equal data)");
  digest->add_option("--at", digest_args.at,
                     "At this commit (waits for it with --wait; refused once past it)");
  digest->add_option("--wait", digest_args.wait_s, "Seconds to wait for --at's commit")
      ->check(CLI::Range(0.0, 3600.0));
  digest->add_flag("--json", digest_args.json, "Print JSON");
  cli::BackupCommands backup_commands;
  cli::AddBackupCommands(app, &backup_commands);
  cli::UserCommands user_commands;
  cli::AddUserCommands(app, &user_commands);
  std::string backup_file;
  auto* backup = app.add_subcommand(
      "backup", "Take a hot, consistent backup of the server's database into FILE (- for "
                "standard output); reads and writes go on meanwhile");
  backup->add_option("FILE", backup_file,
                     "The backup file (written as FILE.partial, renamed when whole); -: "
                     "standard output")
      ->required();

  // A misspelt command is named, with the nearest one (CLI11 would only say that an
  // argument was not expected); so is a misspelt subcommand of a group (user, role).
  CLI::App* level = &app;
  std::string path;  // the commands so far: "", "user "
  for (int i = 1; i < argc; i++) {
    std::string a = argv[i];
    if (!a.empty() && a[0] == '-') {
      // An option of the top level (or of the group) that takes a value: skip the value.
      for (CLI::App* l : {level, &app}) {
        const CLI::Option* o = l->get_option_no_throw(a);
        if (o && o->get_items_expected_min() > 0) {
          i++;
          break;
        }
      }
      continue;
    }
    if (a.empty()) continue;
    std::vector<std::string> commands;
    for (const CLI::App* sub : level->get_subcommands({})) commands.push_back(sub->get_name());
    if (std::find(commands.begin(), commands.end(), a) == commands.end()) {
      std::string near = Nearest(a, commands);
      Note("unknown command '" + path + a + "'; " +
           (near.empty() ? "cairn " + path + "--help lists them"
                         : "did you mean '" + path + near + "'?"));
      return kUsage;
    }
    level = level->get_subcommand(a);
    if (level->get_subcommands({}).empty()) break;
    path += a + " ";
  }

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);  // --help, --version
    // CLI11's messages quote arguments, which may hold any bytes.
    Note(std::string(e.what()) + "; run with --help for more information");
    return kUsage;
  }

  // verify-backup, restore: offline, no server.
  if (auto code = cli::RunBackupCommands(backup_commands)) return *code;

  TxnNames names;  // of `cairn txn`'s parts, for its errors
  try {
    if (key_base64) {
      if (!index.empty()) throw Usage("--key-base64 is for keys, not index values: write "
                                      "{\"$string\": \"<base64>\"} in --from/--to");
      using Arg = std::pair<std::string*, const char*>;
      for (auto [arg, name] : {Arg{&key, "KEY"}, Arg{&from, "--from"}, Arg{&to, "--to"},
                               Arg{&watch_args.prefix, "--prefix"}}) {
        std::string bytes;
        if (arg->empty()) continue;
        if (!DecodeBase64(*arg, &bytes)) {
          throw Usage(std::string(name) + " is not standard base64 (RFC 4648, padded), as "
                      "--key-base64 asks: '" + *arg + "'");
        }
        *arg = std::move(bytes);
      }
    }
    // Connect only when needed, after the arguments have been checked.
    std::shared_ptr<Client> client;
    uint32_t scram_iterations = 0;  // user create|passwd --iterations
    auto db = [&]() -> Client* {
      if (!client) {
        ClientOptions o;
        o.address = addr;
        o.connections = 1;
        o.client_name = "cairn-cli";
        o.tls = tls;
        o.tls_ca = tls_ca;
        o.tls_cert = tls_cert;
        o.tls_key = tls_key;
        o.tls_server_name = tls_server_name;
        if (scram_iterations) o.scram_iterations = scram_iterations;
        cli::ApplyLogin(login, &o);
        client = Client::Connect(o);
      }
      return client.get();
    };
    auto query_options = [&] {
      QueryOptions q;
      if (!eq.empty()) q.equal = ParseScalars(eq);
      if (!from.empty()) q.from = ScalarBound{ParseScalar(from, "--from"), true};
      if (!to.empty()) q.to = ScalarBound{ParseScalar(to, "--to"), true};
      for (const Scalar& v : q.equal) WarnIfNumericString(v, "--eq");
      if (q.from) WarnIfNumericString(q.from->value, "--from");
      if (q.to) WarnIfNumericString(q.to->value, "--to");
      q.limit = paging.limit;
      q.reverse = reverse;
      return q;
    };
    auto scan_options = [&] {
      ScanOptions s;
      if (!from.empty()) s.from = Bound{from, true};
      if (!to.empty()) s.to = Bound{to, true};
      s.limit = paging.limit;
      s.reverse = reverse;
      return s;
    };
    auto done = [](const std::string& fields) { std::printf("{%s}\n", fields.c_str()); };
    auto c_json = "\"collection\":" + Text(coll);

    cli::CheckLogin(login);
    if (user_commands.chosen()) {
      return cli::RunUserCommand(user_commands, [&](uint32_t iterations) -> Client& {
        scram_iterations = iterations;
        return *db();
      });
    }
    if (*ping) {
      auto t0 = std::chrono::steady_clock::now();
      db()->Ping();
      double us = std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count();
      std::printf("{\"ok\":true,\"round_trip_us\":%.0f}\n", us);
    } else if (*stats) {
      std::printf("%s\n", db()->Stats().ToJson().c_str());
    } else if (*replicas) {
      ReplicasInfo r = db()->ListReplicas();
      if (replicas_json) {
        std::printf("%s\n", ReplicasJson(r).c_str());
      } else {
        PrintReplicasTable(r);
      }
    } else if (*promote) {
      ReplicasInfo r = db()->Promote();
      std::printf("%s\n", ReplicasJson(r).c_str());
    } else if (*verify) {
      VerifyResult v = db()->Verify();
      std::string problems;
      for (const std::string& p : v.problems) problems += (problems.empty() ? "" : ",") + Text(p);
      std::printf("{\"ok\":%s,\"records\":%llu,\"index_entries\":%llu,\"log_entries\":%llu,"
                  "\"problems\":[%s]}\n",
                  v.ok() ? "true" : "false", (unsigned long long)v.records,
                  (unsigned long long)v.index_entries, (unsigned long long)v.log_entries,
                  problems.c_str());
      if (!v.ok()) {
        Note("verify found " + std::to_string(v.problems.size()) + " problem(s); the first: " +
             v.problems[0]);
        return kServer;
      }
    } else if (*create_coll) {
      try {
        uint64_t commit = db()->CreateCollection(coll);
        done(c_json + ",\"created\":true,\"commit\":" + std::to_string(commit));
      } catch (const Error& e) {
        if (!if_not_exists || e.code() != ErrorCode::kAlreadyExists) throw;
        done(c_json + ",\"created\":false");
      }
    } else if (*drop_coll) {
      try {
        uint64_t commit = db()->DropCollection(coll);
        done(c_json + ",\"dropped\":true,\"commit\":" + std::to_string(commit));
      } catch (const Error& e) {
        if (!if_exists || e.code() != ErrorCode::kUnknownName) throw;
        done(c_json + ",\"dropped\":false");
      }
    } else if (*list || *indexes) {
      std::vector<CollectionInfo> infos;
      if (*list) {
        infos = db()->ListCollections();
      } else {
        infos.push_back(db()->DescribeCollection(coll));
      }
      for (const CollectionInfo& c : infos) {
        if (*indexes) {
          for (const IndexInfo& ix : c.indexes) std::printf("%s\n", IndexJson(ix).c_str());
          continue;
        }
        std::string line = "{\"name\":" + Text(c.name) + ",\"created\":" + std::to_string(c.created) + ",\"indexes\":[";
        for (size_t i = 0; i < c.indexes.size(); i++) line += (i ? "," : "") + IndexJson(c.indexes[i]);
        std::printf("%s]}\n", line.c_str());
      }
    } else if (*create_ix) {
      IndexSpec spec{index, {}, unique};
      std::stringstream in(fields);
      for (std::string f; std::getline(in, f, ',');) spec.fields.push_back(f);
      std::string ix_json = c_json + ",\"index\":" + Text(index);
      uint64_t commit = 0;
      try {
        commit = db()->CreateIndex(coll, spec);
      } catch (const Error& e) {
        if (!if_not_exists || e.code() != ErrorCode::kAlreadyExists) throw;
        Note("index '" + index + "' exists already; it is left as it is");
        done(ix_json + ",\"created\":false");
        return kOk;
      }
      // Wait for the build: an index over existing records is `building` until the
      // server has filled it, and a unique one over duplicates ends `failed`.
      auto state = [&] {
        for (const IndexInfo& ix : db()->DescribeCollection(coll).indexes) {
          if (ix.spec.name == index) return ix;
        }
        throw Failure(kUnknown, "index '" + index + "' was dropped while it was being built");
      };
      IndexInfo ix = no_wait ? IndexInfo{spec, IndexState::kBuilding, ""} : state();
      auto start = std::chrono::steady_clock::now();
      bool tty = isatty(2), shown = false;
      while (!no_wait && ix.state == IndexState::kBuilding) {
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
        double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        if (tty && s > 1) {
          std::fprintf(stderr, "\rbuilding index %s on %s: %.0f s", index.c_str(), coll.c_str(), s);
          shown = true;
        }
        ix = state();
      }
      if (shown) std::fprintf(stderr, "\n");
      if (ix.state == IndexState::kFailed) {
        throw Failure(kConstraint, "index '" + index + "' failed to build: " + ix.error +
                                       "; drop it (cairn drop-index " + coll + " " + index +
                                       "), fix the records, and create it again");
      }
      done(ix_json + ",\"created\":true,\"state\":" + Text(IndexStateName(ix.state)) +
           ",\"commit\":" + std::to_string(commit));
    } else if (*drop_ix) {
      try {
        uint64_t commit = db()->DropIndex(coll, index);
        done(c_json + ",\"index\":" + Text(index) + ",\"dropped\":true,\"commit\":" +
             std::to_string(commit));
      } catch (const Error& e) {
        if (!if_exists || e.code() != ErrorCode::kUnknownName) throw;
        done(c_json + ",\"index\":" + Text(index) + ",\"dropped\":false");
      }
    } else if (*get) {
      auto r = db()->Get(coll, key);
      if (!r) {
        Note("not found: " + coll + "/" + key);
        return kAbsent;
      }
      std::printf("%s\n", RecordJson(*r).c_str());
    } else if (*del) {
      Txn t;
      if (if_version) t.IfVersion(coll, key, *if_version);
      t.Delete(coll, key);
      TxnResult r = db()->Commit(t);
      if (!r.results.at(0).found) {
        Note("not found: " + coll + "/" + key);
        return kAbsent;
      }
      done("\"key\":" + Quote(key) + ",\"deleted\":true,\"commit\":" + std::to_string(r.commit));
    } else if (*scan) {
      ScanOptions s = scan_options();
      return Page(*db(), paging, [&](Txn& t, std::string_view c) { t.Scan(coll, s, c); });
    } else if (*query) {
      if (eq.empty() && from.empty() && to.empty()) throw Usage("query needs --eq, or --from/--to");
      QueryOptions q = query_options();
      return Page(*db(), paging, [&](Txn& t, std::string_view c) { t.Query(coll, index, q, c); });
    } else if (*count) {
      uint64_t n;
      if (index.empty()) {
        n = db()->Count(coll, scan_options());
      } else {
        QueryOptions q = query_options();
        n = db()->CountQuery(coll, index, q);
      }
      std::printf("%llu\n", (unsigned long long)n);
    } else if (*txn) {
      if (isatty(0)) {
        std::fprintf(stderr, "cairn txn: reading the transaction from standard input "
                             "(end it with Ctrl-D)\n");
      }
      std::stringstream in;
      in << std::cin.rdbuf();
      Txn t = ParseTxn(in.str(), &names);
      TxnResult r = db()->Commit(t);
      std::printf("%s\n", TxnResultJson(r).c_str());
    } else if (*load) {
      return Load(*db(), LoadOptions{coll, file, key_field, batch, atomic});
    } else if (*watch) {
      if (watch_args.all_collections == !watch_args.collection.empty()) {
        throw Usage("watch takes a COLLECTION, or --all-collections");
      }
      return WatchChanges(*db(), watch_args);
    } else if (*backup) {
      return Backup(*db(), backup_file);
    } else if (*digest) {
      if (digest_args.wait_s > 0 && digest_args.at == 0) throw Usage("--wait goes with --at");
      return PrintDigest(*db(), digest_args);
    } else {
      for (size_t i = 0; i < writes.size(); i++) {
        if (!*writes[i]) continue;
        Document d = ParseDoc(json);
        uint64_t commit = i == 0   ? db()->Put(coll, key, d, if_version)
                          : i == 1 ? db()->Insert(coll, key, d)
                                   : db()->Replace(coll, key, d, if_version);
        std::printf("{\"key\":%s,\"version\":%llu}\n", Quote(key).c_str(), (unsigned long long)commit);
      }
    }
    return kOk;
  } catch (const Usage& e) {
    Note(e.what());
    return kUsage;
  } catch (const cli::UsageError& e) {
    Note(e.what());
    return kUsage;
  } catch (const Failure& e) {
    Note(e.what());
    return e.code;
  } catch (const Error& e) {
    // A transaction's error names the part that failed as the user wrote it.
    std::string where;
    if (e.operation() >= 0 && size_t(e.operation()) < names.ops.size()) {
      where = names.ops[e.operation()] + ": ";
    } else if (e.condition() >= 0 && size_t(e.condition()) < names.conditions.size()) {
      where = names.conditions[e.condition()] + ": ";
    }
    std::string message = e.message();
    // A one-operation command's error needs no "operation 0" prefix.
    if (!where.empty() || (!*txn && message.rfind("operation 0 (", 0) == 0)) {
      // The server's own prefix ("operation 0 (put): ") is replaced by the user's terms.
      size_t colon = message.find("): ");
      if (message.rfind("operation ", 0) == 0 || message.rfind("condition ", 0) == 0) {
        message = colon != std::string::npos ? message.substr(colon + 3)
                                              : message.substr(message.find(": ") + 2);
      }
    }
    Note(where + std::string(ErrorCodeName(e.code())) + ": " + message);
    if (user_commands.chosen()) return cli::UserCommandExit(e.code(), ExitFor(e.code()));
    return ExitFor(e.code());
  }
}

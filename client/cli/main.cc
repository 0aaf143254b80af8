// cairn: the command line for cairnd, built on libcairn. JSON in, JSON out.
//
// Exit codes: 0 success; 1 not found or condition failed; 2 usage error (bad
// arguments, bad JSON); 3 server or connection error. Messages go to stderr.
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <deque>
#include <fstream>
#include <future>
#include <iostream>
#include <sstream>

#include "cairn/client/client.h"
#include "cairn/protocol/json.h"

namespace {

using namespace cairn;

constexpr int kOk = 0, kNotFound = 1, kUsage = 2, kServer = 3;

struct Usage : std::runtime_error {
  using std::runtime_error::runtime_error;
};

std::string Quote(std::string_view s) {
  std::string out;
  AppendJsonString(s, &out);
  return out;
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
  std::string out = "{\"name\":" + Quote(ix.spec.name) + ",\"fields\":[";
  for (size_t j = 0; j < ix.spec.fields.size(); j++) out += (j ? "," : "") + Quote(ix.spec.fields[j]);
  out += "],\"unique\":" + std::string(ix.spec.unique ? "true" : "false") + ",\"state\":" + Quote(ix.state);
  if (!ix.error.empty()) out += ",\"error\":" + Quote(ix.error);
  return out + "}";
}

Document ParseDoc(const std::string& json) {
  try {
    return Document::FromJson(json);
  } catch (const Error& e) {
    throw Usage(e.message());
  }
}

Scalar ParseScalar(const std::string& json) {
  try {
    return ScalarFromJson(json);
  } catch (const Error& e) {
    // A bare word is taken as a string: --eq alice is --eq '"alice"'.
    if (!json.empty() && json.find_first_of("\"{}[],:") == std::string::npos) return json;
    throw Usage(e.message());
  }
}

// --eq takes one JSON value, or a JSON array of values for a compound index's prefix.
std::vector<Scalar> ParseScalars(const std::string& json) {
  std::string flex, err;
  if (!json.empty() && json[0] == '[') {
    if (!JsonToFlex(json, &flex, &err)) throw Usage(err);
    Document holder = Document::FromJson("{\"v\": " + json + "}");
    std::vector<Scalar> out;
    Value arr = holder["v"];
    for (size_t i = 0; i < arr.size(); i++) out.push_back(ParseScalar(arr[i].ToJson()));
    return out;
  }
  return {ParseScalar(json)};
}

std::shared_ptr<Client> Connect(const std::string& addr) {
  ClientOptions o;
  o.address = addr;
  o.connections = 1;
  o.client_name = "cairn-cli";
  return Client::Connect(o);
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

// `cairn txn` reads {"conditions": [...], "ops": [...]} from stdin.
Txn ParseTxn(const std::string& json) {
  Document d = ParseDoc(json);
  Txn t;
  Value conds = d["conditions"];
  for (size_t i = 0; i < conds.size(); i++) {
    Value c = conds[i];
    std::string kind = c["kind"].AsString(), coll = c["collection"].AsString(),
                key = c["key"].AsString();
    if (coll.empty() || key.empty()) throw Usage("condition " + std::to_string(i) + " needs collection and key");
    if (kind == "absent") {
      t.IfAbsent(coll, key);
    } else if (kind == "present") {
      t.IfPresent(coll, key);
    } else if (kind == "version") {
      if (!c["version"].is_int()) throw Usage("a version condition needs \"version\"");
      t.IfVersion(coll, key, c["version"].AsUint());
    } else {
      throw Usage("condition kind must be absent, present or version, not '" + kind + "'");
    }
  }
  Value ops = d["ops"];
  if (ops.size() == 0) throw Usage("a transaction needs \"ops\": [...]");
  for (size_t i = 0; i < ops.size(); i++) {
    Value o = ops[i];
    std::string op = o["op"].AsString(), coll = o["collection"].AsString(), key = o["key"].AsString();
    if (coll.empty()) throw Usage("operation " + std::to_string(i) + " needs a collection");
    auto doc = [&] {
      if (!o["document"].is_map()) throw Usage("operation " + std::to_string(i) + " needs a \"document\" object");
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
      throw Usage("op must be get, put, insert, replace, delete or count, not '" + op + "'");
    }
  }
  return t;
}

int Load(Client& db, const std::string& coll, const std::string& file, const std::string& key_field,
         size_t batch) {
  std::ifstream in(file);
  if (!in) throw Usage("cannot read " + file);
  bool tty = isatty(2);
  auto start = std::chrono::steady_clock::now();
  auto last_print = start;
  uint64_t loaded = 0, line_no = 0;
  std::deque<std::pair<std::future<TxnResult>, size_t>> inflight;  // a few batches pipelined
  auto drain = [&](size_t keep) {
    while (inflight.size() > keep) {
      inflight.front().first.get();  // throws on error
      loaded += inflight.front().second;
      inflight.pop_front();
      auto now = std::chrono::steady_clock::now();
      if (tty && now - last_print > std::chrono::milliseconds(250)) {
        double s = std::chrono::duration<double>(now - start).count();
        std::fprintf(stderr, "\rloaded %llu records (%.0f/s)", (unsigned long long)loaded, loaded / s);
        last_print = now;
      }
    }
  };
  Txn txn;
  size_t in_txn = 0;
  std::string line;
  while (std::getline(in, line)) {
    line_no++;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    Document d;
    try {
      d = Document::FromJson(line);
    } catch (const Error& e) {
      throw Usage(file + ":" + std::to_string(line_no) + ": " + e.message());
    }
    Value k = d[key_field];
    std::string key = k.is_string() ? k.AsString() : k.is_number() ? k.ToJson() : "";
    if (key.empty()) {
      throw Usage(file + ":" + std::to_string(line_no) + ": no key field '" + key_field + "'");
    }
    txn.Put(coll, key, d);
    if (++in_txn == batch) {
      inflight.emplace_back(db.AsyncCommit(txn, asio::use_future), in_txn);
      txn = Txn();
      in_txn = 0;
      drain(4);
    }
  }
  if (in_txn) inflight.emplace_back(db.AsyncCommit(txn, asio::use_future), in_txn);
  drain(0);
  double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (tty) std::fprintf(stderr, "\r");
  std::fprintf(stderr, "loaded %llu records in %.2f s\n", (unsigned long long)loaded, s);
  return kOk;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"cairn: command line for cairnd (JSON in, JSON out)"};
  app.require_subcommand(1);
  const char* env = std::getenv("CAIRN_ADDR");
  std::string addr = env && *env ? env : "127.0.0.1:7420";
  app.add_option("--addr", addr, "HOST:PORT of cairnd (or $CAIRN_ADDR)")->capture_default_str();

  std::string coll, key, json, index, fields, from, to, eq, file, key_field = "id";
  std::optional<uint64_t> if_version;
  uint32_t limit = 0;
  size_t batch = 500;
  bool unique = false, reverse = false;

  auto* ping = app.add_subcommand("ping", "Check that the server answers");
  auto* stats = app.add_subcommand("stats", "Server statistics");
  auto* create_coll = app.add_subcommand("create-collection", "Create a collection");
  create_coll->add_option("COLLECTION", coll)->required();
  auto* drop_coll = app.add_subcommand("drop-collection", "Drop a collection and its data");
  drop_coll->add_option("COLLECTION", coll)->required();
  auto* list = app.add_subcommand("collections", "List collections, one JSON line each");
  auto* create_ix = app.add_subcommand("create-index", "Create a secondary index");
  create_ix->add_option("COLLECTION", coll)->required();
  create_ix->add_option("INDEX", index)->required();
  create_ix->add_option("FIELDS", fields, "FIELD[,FIELD...], dotted paths")->required();
  create_ix->add_flag("--unique", unique, "One record per value");
  auto* drop_ix = app.add_subcommand("drop-index", "Drop an index");
  drop_ix->add_option("COLLECTION", coll)->required();
  drop_ix->add_option("INDEX", index)->required();
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
    writes.push_back(w);
  }
  auto* get = app.add_subcommand("get", "Read a record");
  get->add_option("COLLECTION", coll)->required();
  get->add_option("KEY", key)->required();
  auto* del = app.add_subcommand("delete", "Delete a record");
  del->add_option("COLLECTION", coll)->required();
  del->add_option("KEY", key)->required();
  del->add_option("--if-version", if_version, "Only if the record is at this version");
  auto* scan = app.add_subcommand("scan", "Records in key order, one JSON line each");
  scan->add_option("COLLECTION", coll)->required();
  scan->add_option("--from", from, "First key (inclusive)");
  scan->add_option("--to", to, "Last key (inclusive)");
  scan->add_option("--limit", limit, "At most this many");
  scan->add_flag("--reverse", reverse, "High to low");
  auto* query = app.add_subcommand("query", "Records by secondary index, one JSON line each");
  query->add_option("COLLECTION", coll)->required();
  query->add_option("INDEX", index)->required();
  auto* q_eq = query->add_option("--eq", eq, "Equal to this JSON value (an array: a compound prefix)");
  query->add_option("--from", from, "Lowest value, JSON (inclusive)")->excludes(q_eq);
  query->add_option("--to", to, "Highest value, JSON (inclusive)")->excludes(q_eq);
  query->add_option("--limit", limit, "At most this many");
  query->add_flag("--reverse", reverse, "High to low");
  auto* count = app.add_subcommand("count", "Count records (of a key range, or of an index query)");
  count->add_option("COLLECTION", coll)->required();
  count->add_option("--index", index, "Count an index query instead of keys");
  count->add_option("--eq", eq, "With --index: equal to this JSON value");
  count->add_option("--from", from, "First key (or, with --index, lowest JSON value)");
  count->add_option("--to", to, "Last key (or, with --index, highest JSON value)");
  auto* txn = app.add_subcommand("txn", "Run a transaction read as JSON from stdin: "
                                         "{\"conditions\": [...], \"ops\": [...]}");
  auto* load = app.add_subcommand("load", "Bulk-load JSON lines into a collection");
  load->add_option("COLLECTION", coll)->required();
  load->add_option("FILE", file)->required();
  load->add_option("--key-field", key_field, "Field holding each record's key")->capture_default_str();
  load->add_option("--batch", batch, "Records per transaction")->capture_default_str()->check(CLI::Range(1, 100000));

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    return rc == 0 ? 0 : kUsage;
  }

  try {
    // Connect only when needed, after the arguments have been checked.
    std::shared_ptr<Client> client;
    auto db = [&]() -> Client* {
      if (!client) client = Connect(addr);
      return client.get();
    };
    auto query_options = [&] {
      QueryOptions q;
      if (!eq.empty()) q.equal = ParseScalars(eq);
      if (!from.empty()) q.from = ScalarBound{ParseScalar(from), true};
      if (!to.empty()) q.to = ScalarBound{ParseScalar(to), true};
      q.limit = limit;
      q.reverse = reverse;
      return q;
    };
    auto scan_options = [&] {
      ScanOptions s;
      if (!from.empty()) s.from = Bound{from, true};
      if (!to.empty()) s.to = Bound{to, true};
      s.limit = limit;
      s.reverse = reverse;
      return s;
    };

    if (*ping) {
      auto t0 = std::chrono::steady_clock::now();
      db()->Ping();
      double us = std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count();
      std::printf("{\"ok\":true,\"round_trip_us\":%.0f}\n", us);
    } else if (*stats) {
      std::printf("%s\n", db()->Stats().ToJson().c_str());
    } else if (*create_coll) {
      db()->CreateCollection(coll);
    } else if (*drop_coll) {
      db()->DropCollection(coll);
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
        std::string line = "{\"name\":" + Quote(c.name) + ",\"created\":" + std::to_string(c.created) + ",\"indexes\":[";
        for (size_t i = 0; i < c.indexes.size(); i++) line += (i ? "," : "") + IndexJson(c.indexes[i]);
        std::printf("%s]}\n", line.c_str());
      }
    } else if (*create_ix) {
      IndexSpec spec{index, {}, unique};
      std::stringstream in(fields);
      for (std::string f; std::getline(in, f, ',');) spec.fields.push_back(f);
      db()->CreateIndex(coll, spec);
    } else if (*drop_ix) {
      db()->DropIndex(coll, index);
    } else if (*get) {
      auto r = db()->Get(coll, key);
      if (!r) {
        std::fprintf(stderr, "cairn: not found: %s/%s\n", coll.c_str(), key.c_str());
        return kNotFound;
      }
      std::printf("%s\n", RecordJson(*r).c_str());
    } else if (*del) {
      if (!db()->Delete(coll, key, if_version)) {
        std::fprintf(stderr, "cairn: not found: %s/%s\n", coll.c_str(), key.c_str());
        return kNotFound;
      }
    } else if (*scan) {
      for (const Record& r : db()->Scan(coll, scan_options())) std::printf("%s\n", RecordJson(r).c_str());
    } else if (*query) {
      if (eq.empty() && from.empty() && to.empty()) throw Usage("query needs --eq, or --from/--to");
      QueryOptions q = query_options();
      for (const Record& r : db()->Query(coll, index, q)) std::printf("%s\n", RecordJson(r).c_str());
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
      std::stringstream in;
      in << std::cin.rdbuf();
      Txn t = ParseTxn(in.str());
      TxnResult r = db()->Commit(t);
      std::printf("%s\n", TxnResultJson(r).c_str());
    } else if (*load) {
      if (!std::ifstream(file)) throw Usage("cannot read " + file);
      return Load(*db(), coll, file, key_field, batch);
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
    std::fprintf(stderr, "cairn: %s\n", e.what());
    return kUsage;
  } catch (const Error& e) {
    std::fprintf(stderr, "cairn: %s\n", e.what());
    if (e.code() == ErrorCode::kNotFound || e.code() == ErrorCode::kConditionFailed ||
        e.code() == ErrorCode::kUnknownName) {
      return kNotFound;
    }
    if (e.code() == ErrorCode::kBadRequest) return kUsage;
    return kServer;
  }
}

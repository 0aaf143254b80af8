// cairn-demo: opens (or creates) a database in a folder, writes a few users,
// indexes them by email (unique) and by age, and queries both indexes.
//
//   cairn-demo [DATA_DIR]      (default: ./cairn-data)
#include <cstdio>
#include <string>

#include "cairn/engine/engine.h"
#include "cairn/protocol/json.h"

using namespace cairn;

static void Check(const Status& s, const char* what) {
  if (!s.ok() && s.code() != Code::kAlreadyExists) {
    std::fprintf(stderr, "%s: %s\n", what, s.ToString().c_str());
    std::exit(1);
  }
}

int main(int argc, char** argv) {
  std::string dir = argc > 1 ? argv[1] : "./cairn-data";
  auto opened = Engine::Open(dir, Options{});
  if (!opened.ok()) {
    std::fprintf(stderr, "open %s: %s\n", dir.c_str(), opened.status().ToString().c_str());
    return 1;
  }
  Engine& db = **opened;
  Check(db.CreateCollection("users"), "create collection");
  Check(db.CreateIndex("users", {"by_email", {"email"}, true}), "create index by_email");
  Check(db.CreateIndex("users", {"by_age", {"age"}, false}), "create index by_age");

  const char* users[][2] = {
      {"alice", R"({"email": "alice@example.com", "age": 34, "city": "Lyon"})"},
      {"bob", R"({"email": "bob@example.com", "age": 27, "city": "Oslo"})"},
      {"carol", R"({"email": "carol@example.com", "age": 41, "city": "Lima"})"},
      {"dave", R"({"email": "dave@example.com", "age": 27, "city": "Pune"})"},
  };
  std::vector<std::string> docs;
  Transaction put_all;
  for (auto& [key, json] : users) {
    std::string doc, err;
    if (!JsonToDocument(json, &doc, &err)) return std::fprintf(stderr, "%s\n", err.c_str()), 1;
    docs.push_back(std::move(doc));
  }
  for (size_t i = 0; i < docs.size(); i++) put_all.ops.push_back(PutOp{"users", users[i][0], docs[i]});
  TxnResult written = db.Execute(put_all);
  Check(written.status, "put");
  std::printf("wrote %zu users in commit %llu\n", docs.size(), (unsigned long long)written.commit);

  // A duplicate email is refused by the unique index.
  std::string dup;
  std::string err;
  JsonToDocument(R"({"email": "alice@example.com", "age": 50})", &dup, &err);
  Transaction bad;
  bad.ops.push_back(PutOp{"users", "mallory", dup});
  std::printf("mallory with alice's email: %s\n", db.Execute(bad).status.ToString().c_str());

  auto show = [](const char* title, const TxnResult& r) {
    std::printf("%s\n", title);
    for (const Record& rec : r.results.at(0).records) {
      std::printf("  %s v%llu %s\n", rec.key.c_str(), (unsigned long long)rec.version,
                  FlexToJson(rec.value).c_str());
    }
  };
  Transaction q1;
  q1.ops.push_back(QueryOp{QuerySpec{.collection = "users", .index = "by_email",
                                     .equal = {std::string("bob@example.com")}}});
  show("email = bob@example.com:", db.Execute(q1));

  Transaction q2;
  q2.ops.push_back(QueryOp{QuerySpec{.collection = "users", .index = "by_age",
                                     .lower = ValueBound{int64_t{27}, true},
                                     .upper = ValueBound{int64_t{40}, false}}});
  show("27 <= age < 40:", db.Execute(q2));

  VerifyReport report = db.Verify();
  std::printf("verify: %s (%llu records, %llu index entries, %llu log entries)\n",
              report.ok() ? "ok" : report.problems.front().c_str(),
              (unsigned long long)report.records, (unsigned long long)report.index_entries,
              (unsigned long long)report.log_entries);
  return report.ok() ? 0 : 1;
}

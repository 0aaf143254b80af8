// Merged reads (engine/src/merged.h): LMDB under overlays, against a model that replays
// every commit up to the one read. A seeded random history of commits is split at a
// checkpoint K (commits 1..K applied to LMDB) and at M (K+1..M in an older overlay, M+1..N
// in a newer one); reads at commits C in [K, N] must see exactly the model's state after
// commits 1..C: point reads, full iterations both ways, and seeks followed by random walks
// of Next and Prev that change direction. The same for a DUPSORT table, whose pairs the
// overlays hold as EncodeDupKey keys, and the encoding's order against the pairs'.
//
// CAIRN_TEST_SEED=<n> varies the random histories; each failure names its case.
#include "merged.h"

#include <gtest/gtest.h>
#include <lmdb.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "overlay.h"
#include "temp_dir.h"

namespace cairn::internal {
namespace {

using Pair = std::pair<std::string, std::string>;
// What a cursor should yield, in order: (key, value) of a plain table, (key, data) of a
// DUPSORT one. std::string's order is memcmp's, a prefix first: LMDB's.
using View = std::vector<Pair>;

uint64_t BaseSeed() {
  const char* env = std::getenv("CAIRN_TEST_SEED");
  return env ? std::strtoull(env, nullptr, 0) : 20240612;
}

std::string Show(std::string_view s) { return ::testing::PrintToString(std::string(s)); }

void Check(int rc, const char* what) {
  if (rc != 0) throw std::runtime_error(std::string(what) + ": " + mdb_strerror(rc));
}

MDB_val Val(std::string_view s) { return MDB_val{s.size(), const_cast<char*>(s.data())}; }

// An LMDB environment in a fresh folder with one plain and one DUPSORT database.
class Lmdb {
 public:
  Lmdb() {
    Check(mdb_env_create(&env_), "env create");
    Check(mdb_env_set_maxdbs(env_, 4), "maxdbs");
    Check(mdb_env_set_mapsize(env_, size_t{256} << 20), "mapsize");
    Check(mdb_env_open(env_, dir_.path().c_str(), MDB_NOSYNC, 0644), "env open");
    MDB_txn* txn;
    Check(mdb_txn_begin(env_, nullptr, 0, &txn), "txn");
    Check(mdb_dbi_open(txn, "plain", MDB_CREATE, &plain_), "open plain");
    Check(mdb_dbi_open(txn, "dup", MDB_CREATE | MDB_DUPSORT, &dup_), "open dup");
    Check(mdb_txn_commit(txn), "commit");
  }
  ~Lmdb() { mdb_env_close(env_); }
  Lmdb(const Lmdb&) = delete;
  Lmdb& operator=(const Lmdb&) = delete;

  MDB_env* env() const { return env_; }
  MDB_dbi plain() const { return plain_; }
  MDB_dbi dup() const { return dup_; }

 private:
  cairn::testing::TempDir dir_;
  MDB_env* env_ = nullptr;
  MDB_dbi plain_ = 0, dup_ = 0;
};

// A transaction, aborted when it goes unless committed.
class Txn {
 public:
  Txn(MDB_env* env, bool read_only) {
    Check(mdb_txn_begin(env, nullptr, read_only ? MDB_RDONLY : 0, &txn_), "txn begin");
  }
  ~Txn() {
    if (txn_) mdb_txn_abort(txn_);
  }
  Txn(const Txn&) = delete;
  Txn& operator=(const Txn&) = delete;
  MDB_txn* get() const { return txn_; }
  void Commit() {
    int rc = mdb_txn_commit(txn_);
    txn_ = nullptr;
    Check(rc, "commit");
  }

 private:
  MDB_txn* txn_ = nullptr;
};

std::string Enc(std::string_view key, std::string_view data) {
  std::string out;
  EncodeDupKey(key, data, &out);
  return out;
}

// One write of a commit. Plain: put (key, second) or delete key. DUPSORT: put or delete the
// pair (key, second).
struct Op {
  std::string key, second;
  bool del = false;
};
using Commit = std::vector<Op>;
using History = std::vector<Commit>;  // history[c - 1] is commit c

void ApplyToLmdb(MDB_txn* txn, MDB_dbi dbi, bool dup, const History& h, size_t first, size_t last) {
  for (size_t c = first; c <= last; c++) {
    for (const Op& op : h[c - 1]) {
      MDB_val k = Val(op.key), v = Val(op.second);
      int rc = op.del ? mdb_del(txn, dbi, &k, dup ? &v : nullptr) : mdb_put(txn, dbi, &k, &v, 0);
      if (op.del && rc == MDB_NOTFOUND) rc = 0;
      Check(rc, op.del ? "del" : "put");
    }
  }
}

void ApplyToOverlay(Overlay* o, uint32_t table, bool dup, const History& h, size_t first,
                    size_t last) {
  for (size_t c = first; c <= last; c++) {
    for (const Op& op : h[c - 1]) {
      bool ok;
      if (dup) {
        std::string k = Enc(op.key, op.second);
        ok = op.del ? o->Delete(table, k, c) : o->Put(table, k, "", c);
      } else {
        ok = op.del ? o->Delete(table, op.key, c) : o->Put(table, op.key, op.second, c);
      }
      if (!ok) throw std::runtime_error("overlay write refused");
    }
  }
}

// The model: the state after commits 1..upto.
View ModelView(bool dup, const History& h, size_t upto) {
  if (dup) {
    std::set<Pair> s;
    for (size_t c = 1; c <= upto; c++) {
      for (const Op& op : h[c - 1]) {
        if (op.del) {
          s.erase({op.key, op.second});
        } else {
          s.insert({op.key, op.second});
        }
      }
    }
    return View(s.begin(), s.end());
  }
  std::map<std::string, std::string> m;
  for (size_t c = 1; c <= upto; c++) {
    for (const Op& op : h[c - 1]) {
      if (op.del) {
        m.erase(op.key);
      } else {
        m[op.key] = op.second;
      }
    }
  }
  return View(m.begin(), m.end());
}

// The last write of each key (plain) or pair (DUPSORT) by commits first..last: true for a
// put, false for a delete.
std::map<Pair, bool> LastWrites(bool dup, const History& h, size_t first, size_t last) {
  std::map<Pair, bool> out;
  for (size_t c = first; c <= last; c++) {
    for (const Op& op : h[c - 1]) out[{op.key, dup ? op.second : ""}] = !op.del;
  }
  return out;
}

std::string_view Second(const MergedCursor& c) { return c.value(); }
std::string_view Second(const MergedDupCursor& c) { return c.data(); }
void SeekTo(MergedCursor& c, const Pair& t) { c.Seek(t.first); }
void SeekTo(MergedDupCursor& c, const Pair& t) { c.Seek(t.first, t.second); }
void SeekBackTo(MergedCursor& c, const Pair& t) { c.SeekForPrev(t.first); }
void SeekBackTo(MergedDupCursor& c, const Pair& t) { c.SeekForPrev(t.first, t.second); }

// Bounded, so that a cursor that fails to move fails the test instead of hanging it.
constexpr size_t kMaxEntries = 100'000;

template <class Cursor>
View Forward(Cursor& c) {
  View out;
  for (c.SeekToFirst(); c.Valid() && out.size() < kMaxEntries; c.Next()) {
    out.emplace_back(c.key(), Second(c));
  }
  EXPECT_TRUE(c.status().ok()) << c.status().ToString();
  return out;
}

template <class Cursor>
View Backward(Cursor& c) {
  View out;
  for (c.SeekToLast(); c.Valid() && out.size() < kMaxEntries; c.Prev()) {
    out.emplace_back(c.key(), Second(c));
  }
  EXPECT_TRUE(c.status().ok()) << c.status().ToString();
  return View(out.rbegin(), out.rend());
}

// The index in `view` of the first entry >= t (plain: by key only), and of the last <= t,
// view.size() for none.
size_t ModelSeek(const View& view, const Pair& t, bool dup) {
  auto it = dup ? std::lower_bound(view.begin(), view.end(), t)
                : std::lower_bound(view.begin(), view.end(), t,
                                   [](const Pair& a, const Pair& b) { return a.first < b.first; });
  return size_t(it - view.begin());
}
size_t ModelSeekForPrev(const View& view, const Pair& t, bool dup) {
  auto it = dup ? std::upper_bound(view.begin(), view.end(), t)
                : std::upper_bound(view.begin(), view.end(), t,
                                   [](const Pair& a, const Pair& b) { return a.first < b.first; });
  return it == view.begin() ? view.size() : size_t(it - view.begin()) - 1;
}

// Checks the cursor at view[pos] (not valid if pos == view.size()), then walks it with
// Next and Prev, changing direction at random, checking every step.
template <class Cursor>
void Walk(Cursor& c, const View& view, size_t pos, int steps, std::mt19937_64& rng,
          const std::string& where) {
  bool forward = rng() % 2 == 0;
  for (int step = 0;; step++) {
    ASSERT_TRUE(c.status().ok()) << where << ": " << c.status().ToString();
    if (pos >= view.size()) {
      ASSERT_FALSE(c.Valid()) << where << " step " << step << " at " << Show(c.key());
      return;
    }
    ASSERT_TRUE(c.Valid()) << where << " step " << step << " wants " << Show(view[pos].first) << " "
                           << Show(view[pos].second);
    ASSERT_EQ(std::string(c.key()), view[pos].first) << where << " step " << step;
    ASSERT_EQ(std::string(Second(c)), view[pos].second)
        << where << " step " << step << " key " << Show(view[pos].first);
    if (step == steps) return;
    if (rng() % 3 == 0) forward = !forward;
    if (forward) {
      c.Next();
      pos++;
    } else {
      c.Prev();
      pos = pos == 0 ? view.size() : pos - 1;
    }
  }
}

// Every read of the view at one commit, against the model's view.
template <class Cursor>
void CheckReads(MDB_txn* txn, MDB_dbi dbi, std::span<const OverlayAt> overlays, uint32_t table,
                bool dup, const View& view, const std::vector<Pair>& probes, std::mt19937_64& rng,
                const std::string& where) {
  if (!dup) {
    std::map<std::string, std::string> m(view.begin(), view.end());
    for (const Pair& p : probes) {
      std::string_view value;
      bool found = true;
      Status s = MergedGet(txn, dbi, overlays, table, p.first, &value, &found);
      ASSERT_TRUE(s.ok()) << where << ": " << s.ToString();
      auto it = m.find(p.first);
      ASSERT_EQ(found, it != m.end()) << where << " get " << Show(p.first);
      if (found) {
        ASSERT_EQ(std::string(value), it->second) << where << " get " << Show(p.first);
      }
    }
  }
  Cursor c(txn, dbi, overlays, table);
  ASSERT_TRUE(c.status().ok()) << c.status().ToString();
  ASSERT_FALSE(c.Valid());
  ASSERT_EQ(Forward(c), view) << where << " forward";
  ASSERT_EQ(Backward(c), view) << where << " backward";
  // Seeks at probes (present and absent) and at present entries, then walks.
  for (int q = 0; q < 40; q++) {
    Pair t = probes[rng() % probes.size()];
    if (q % 3 == 0 && !view.empty()) {
      t = view[rng() % view.size()];
      if (!dup) t.second.clear();
    }
    std::string in = where + " seek " + Show(t.first) + " " + Show(t.second);
    switch (rng() % 4) {
      case 0:
        SeekTo(c, t);
        Walk(c, view, ModelSeek(view, t, dup), 12, rng, in);
        break;
      case 1:
        SeekBackTo(c, t);
        Walk(c, view, ModelSeekForPrev(view, t, dup), 12, rng, in + " for prev");
        break;
      case 2:
        c.SeekToFirst();
        Walk(c, view, 0, 6, rng, in + " first");
        break;
      default:
        c.SeekToLast();
        Walk(c, view, view.empty() ? 0 : view.size() - 1, 6, rng, in + " last");
        break;
    }
    if (::testing::Test::HasFatalFailure()) return;
  }
}

struct Coverage {
  size_t cases = 0, reads = 0;
  size_t lmdb_hidden = 0;           // an LMDB entry hidden by an overlay's tombstone
  size_t newer_reputs = 0;          // the newer overlay puts what the older deleted
  size_t newer_deletes = 0;         // the newer overlay deletes what the older put
  size_t older_overrides_lmdb = 0;  // an overlay's value replaces LMDB's (plain)
  size_t checkpoints = 0;           // overlays applied to LMDB (ApplyOverlay) and read back
};

// One split of a history: LMDB holds 1..k; with two overlays, the older one k+1..m and the
// newer m+1..n; with one, k+1..n; with none, k == n.
template <class Cursor>
void RunSplit(Lmdb& db, bool dup, const History& h, size_t k, size_t m, int overlays,
              bool read_in_write_txn, std::mt19937_64& rng, const std::string& where,
              Coverage* cov) {
  const size_t n = h.size();
  const uint32_t table = dup ? 9 : 3;
  MDB_dbi dbi = dup ? db.dup() : db.plain();
  Overlay older, newer;
  // Neighbouring tables hold entries that must never show.
  for (uint32_t t : {table - 1, table + 1}) {
    older.Put(t, dup ? Enc("a", "x") : "a", "neighbour", 1);
    older.Delete(t, dup ? Enc("b", "x") : "b", 1);
    newer.Put(t, dup ? Enc("\xff", "x") : "\xff", "neighbour", 1);
  }
  if (overlays == 2) {
    ApplyToOverlay(&older, table, dup, h, k + 1, m);
    ApplyToOverlay(&newer, table, dup, h, m + 1, n);
  } else if (overlays == 1) {
    m = n;
    ApplyToOverlay(&newer, table, dup, h, k + 1, n);
  }

  auto txn = std::make_unique<Txn>(db.env(), false);
  Check(mdb_drop(txn->get(), dbi, 0), "drop");
  ApplyToLmdb(txn->get(), dbi, dup, h, 1, k);
  if (!read_in_write_txn) {
    txn->Commit();
    txn = std::make_unique<Txn>(db.env(), true);
  }

  std::vector<Pair> probes;
  for (const Commit& c : h) {
    for (const Op& op : c) probes.push_back({op.key, dup ? op.second : ""});
  }
  // Neighbours of written entries, and the extremes.
  size_t written = probes.size();
  for (size_t i = 0; i < written; i += 3) {
    Pair p = probes[i];
    probes.push_back({p.first + std::string(1, '\0'), p.second});
    probes.push_back({p.first.substr(0, p.first.size() - 1), p.second});
    probes.push_back({p.first, dup ? p.second + "\xff" : ""});
    probes.push_back({p.first, ""});
  }
  probes.push_back({"", ""});
  probes.push_back({std::string(1, '\0'), ""});
  probes.push_back({"\xff\xff\xff\xff", ""});
  probes.push_back({std::string(600, '\xff'), dup ? "\xff" : ""});

  const auto lmdb_last = LastWrites(dup, h, 1, k);
  std::vector<size_t> reads = {k, m, n, k + rng() % (n - k + 1), k + rng() % (n - k + 1)};
  for (size_t c : reads) {
    cov->reads++;
    std::vector<OverlayAt> ov;
    if (overlays == 2) {
      ov.push_back({&newer, c});
      ov.push_back({&older, std::min(c, m)});
    } else if (overlays == 1) {
      ov.push_back({&newer, c});
    }
    // What this read exercises.
    const auto older_last = LastWrites(dup, h, k + 1, std::min(c, m));
    const auto newer_last = LastWrites(dup, h, m + 1, c);
    const auto all_last = LastWrites(dup, h, k + 1, c);
    for (const auto& [key, put] : all_last) {
      auto l = lmdb_last.find(key);
      if (!put && l != lmdb_last.end() && l->second) cov->lmdb_hidden++;
      if (put && l != lmdb_last.end() && l->second && !dup) cov->older_overrides_lmdb++;
    }
    if (overlays == 2) {
      for (const auto& [key, put] : newer_last) {
        auto o = older_last.find(key);
        if (o == older_last.end()) continue;
        if (put && !o->second) cov->newer_reputs++;
        if (!put && o->second) cov->newer_deletes++;
      }
    }
    std::string in = where + " k=" + std::to_string(k) + " m=" + std::to_string(m) +
                     " n=" + std::to_string(n) + " overlays=" + std::to_string(overlays) +
                     (read_in_write_txn ? " (write txn)" : "") + " read at " + std::to_string(c);
    CheckReads<Cursor>(txn->get(), dbi, ov, table, dup, ModelView(dup, h, c), probes, rng, in);
    if (::testing::Test::HasFatalFailure()) return;
  }
  cov->cases++;
  if (overlays == 0 || read_in_write_txn) return;

  // The checkpoint: the older overlay applied at m, then the newer at a commit c, make
  // LMDB alone the state at c, and the overlays over it still show that state.
  txn.reset();
  const size_t lo = overlays == 2 ? m : k;
  const size_t c = lo + rng() % (n - lo + 1);
  {
    Txn w(db.env(), false);
    uint64_t applied = 0, total = 0;
    if (overlays == 2) {
      ASSERT_TRUE(ApplyOverlay(w.get(), dbi, dup, older, table, m, &applied).ok());
      total += applied;
    }
    ASSERT_TRUE(ApplyOverlay(w.get(), dbi, dup, newer, table, c, &applied).ok());
    total += applied;
    EXPECT_EQ(total, LastWrites(dup, h, k + 1, std::min(c, m)).size() +
                         (overlays == 2 ? LastWrites(dup, h, m + 1, c).size() : 0))
        << where;
    w.Commit();
  }
  Txn r(db.env(), true);
  std::string in = where + " k=" + std::to_string(k) + " m=" + std::to_string(m) +
                   " overlays=" + std::to_string(overlays) + " checkpointed at " +
                   std::to_string(c);
  CheckReads<Cursor>(r.get(), dbi, {}, table, dup, ModelView(dup, h, c), probes, rng,
                     in + ", LMDB alone");
  if (::testing::Test::HasFatalFailure()) return;
  std::vector<OverlayAt> ov;
  if (overlays == 2) {
    ov.push_back({&newer, c});
    ov.push_back({&older, m});
  } else {
    ov.push_back({&newer, c});
  }
  CheckReads<Cursor>(r.get(), dbi, ov, table, dup, ModelView(dup, h, c), probes, rng,
                     in + ", under the overlays");
  cov->checkpoints++;
}

std::string RandomBytes(std::mt19937_64& rng, size_t n) {
  // Biased to the bytes that matter to the orders and the escape: 0x00, 0x01, 0xff.
  static const char kBytes[] = {'\0', '\x01', '\xff', '\xfe', 'a', 'b'};
  std::string s(n, '\0');
  for (char& c : s) c = rng() % 2 ? kBytes[rng() % sizeof(kBytes)] : char(rng());
  return s;
}

// Keys that are prefixes of each other, with 0x00 and 0xff, and one at LMDB's 511-byte cap.
std::vector<std::string> TestKeys(std::mt19937_64& rng, size_t count) {
  std::vector<std::string> keys = {"a",
                                   "ab",
                                   "abc",
                                   "b",
                                   std::string("a\0", 2),
                                   std::string("a\0\0", 3),
                                   std::string("a\0b", 3),
                                   std::string(1, '\0'),
                                   std::string(2, '\0'),
                                   "a\xff",
                                   "\xff",
                                   "\xff\xff",
                                   "\x01",
                                   std::string(511, 'z')};
  while (keys.size() < count) keys.push_back(RandomBytes(rng, 1 + rng() % 4));
  return keys;
}

template <class Cursor>
void RunModel(bool dup, std::string_view name) {
  Lmdb db;
  Coverage cov;
  const uint64_t base = BaseSeed();
  for (uint64_t round = 0; round < 60; round++) {
    const uint64_t seed = base * 1000 + round;
    std::mt19937_64 rng(seed);
    std::vector<std::string> keys = TestKeys(rng, 18);
    // DUPSORT data: prefixes of each other, 0x00 and 0xff, near the cap; one key ("many")
    // takes hundreds, so that LMDB keeps its duplicates in a sub-database.
    std::vector<std::string> datas = {"x", "xa",   std::string("x\0", 2), "x\xff",
                                      "y", "\xff", std::string(1, '\0'),  std::string(500, 'd')};
    History h;
    size_t n = 30 + rng() % 50;
    if (dup) {
      Commit bulk;
      for (int i = 0; i < 400; i++) {
        bulk.push_back({"many", "d" + std::to_string(1000 + rng() % 600), false});
      }
      h.push_back(bulk);
    }
    while (h.size() < n) {
      Commit c;
      size_t writes = 1 + rng() % 4;
      for (size_t w = 0; w < writes; w++) {
        Op op;
        if (dup && rng() % 3 == 0) {
          op.key = "many";
          op.second = "d" + std::to_string(1000 + rng() % 600);
        } else {
          op.key = keys[rng() % keys.size()];
          op.second = dup ? datas[rng() % datas.size()] : RandomBytes(rng, rng() % 12);
        }
        op.del = rng() % 5 < 2;  // often of absent entries
        c.push_back(op);
        // Sometimes the same commit writes the entry again: the last write wins.
        if (rng() % 8 == 0) {
          op.del = !op.del;
          if (!dup) op.second = RandomBytes(rng, rng() % 5);
          c.push_back(op);
        }
      }
      h.push_back(c);
    }
    std::string where = std::string(name) + " seed " + std::to_string(seed);
    auto pick = [&](size_t lo, size_t hi) { return lo + rng() % (hi - lo + 1); };
    size_t k = pick(0, n), k2 = pick(0, n);
    struct Split {
      size_t k, m;
      int overlays;
    };
    std::vector<Split> splits = {
        {n, n, 0},                              // all in LMDB, no overlays
        {n, n, 2},                              // all in LMDB, two empty overlays
        {0, n, 1},                              // all in one overlay, LMDB empty
        {k, n, 1},                              // one overlay
        {std::min(k, k2), std::max(k, k2), 2},  // two overlays
        {0, pick(0, n), 2},                     // two overlays, LMDB empty
        {k, k, 2},                              // the older overlay empty
        {k, n, 2},                              // the newer overlay empty
    };
    for (size_t i = 0; i < splits.size(); i++) {
      const Split& s = splits[i];
      RunSplit<Cursor>(db, dup, h, s.k, s.m, s.overlays, (round + i) % 4 == 0, rng, where, &cov);
      if (::testing::Test::HasFatalFailure()) return;
    }
  }
  // The cases the brief names happened, many times.
  EXPECT_GT(cov.lmdb_hidden, 100u);
  EXPECT_GT(cov.newer_reputs, 50u);
  EXPECT_GT(cov.newer_deletes, 50u);
  EXPECT_GT(cov.checkpoints, 200u);
  if (!dup) {
    EXPECT_GT(cov.older_overrides_lmdb, 100u);
  }
  printf("%s: %zu splits, %zu reads; LMDB entries hidden %zu, re-put %zu, re-deleted %zu\n",
         std::string(name).c_str(), cov.cases, cov.reads, cov.lmdb_hidden, cov.newer_reputs,
         cov.newer_deletes);
}

TEST(MergedTest, PlainTableMatchesAModel) { RunModel<MergedCursor>(false, "plain"); }

TEST(MergedTest, DupTableMatchesAModel) { RunModel<MergedDupCursor>(true, "dup"); }

// --- The pair encoding.

int Sign(int c) { return c < 0 ? -1 : c > 0 ? 1 : 0; }

int CompareBytes(std::string_view a, std::string_view b) {
  return Sign(std::string(a).compare(std::string(b)));
}

TEST(MergedTest, DupKeyEncodingOrdersLikePairs) {
  std::mt19937_64 rng(BaseSeed());
  // Keys and data that are prefixes of each other and hold 0x00, 0x01 and 0xff.
  std::vector<std::string> parts = {"",
                                    std::string(1, '\0'),
                                    std::string(2, '\0'),
                                    "\x01",
                                    std::string("\0\x01", 2),
                                    std::string("\0\xff", 2),
                                    "\xff",
                                    "\xff\xff",
                                    "a",
                                    "ab",
                                    std::string("a\0", 2),
                                    std::string("a\0b", 3),
                                    "a\xff"};
  std::vector<Pair> pairs;
  for (const std::string& k : parts) {
    for (const std::string& d : parts) pairs.push_back({k, d});
  }
  for (int i = 0; i < 3000; i++)
    pairs.push_back({RandomBytes(rng, rng() % 6), RandomBytes(rng, rng() % 4)});
  std::vector<std::string> enc;
  for (const Pair& p : pairs) enc.push_back(Enc(p.first, p.second));

  std::string scratch;
  for (size_t i = 0; i < pairs.size(); i++) {
    std::string_view key, data;
    ASSERT_TRUE(DecodeDupKey(enc[i], &scratch, &key, &data)) << Show(enc[i]);
    ASSERT_EQ(std::string(key), pairs[i].first) << Show(enc[i]);
    ASSERT_EQ(std::string(data), pairs[i].second) << Show(enc[i]);
    // A key without 0x00 is a view into the encoding itself; data always is.
    if (pairs[i].first.find('\0') == std::string::npos) {
      ASSERT_EQ(key.data(), enc[i].data());
    }
    ASSERT_EQ(data.data(), enc[i].data() + enc[i].size() - data.size());
  }
  for (int q = 0; q < 200000; q++) {
    size_t i = rng() % pairs.size(), j = rng() % pairs.size();
    int want = pairs[i] < pairs[j] ? -1 : pairs[j] < pairs[i] ? 1 : 0;
    ASSERT_EQ(CompareBytes(enc[i], enc[j]), want)
        << Show(pairs[i].first) << "," << Show(pairs[i].second) << " vs " << Show(pairs[j].first)
        << "," << Show(pairs[j].second);
  }
  // Sorting the encodings sorts the pairs.
  std::vector<size_t> order(pairs.size());
  for (size_t i = 0; i < order.size(); i++) order[i] = i;
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return enc[a] < enc[b]; });
  for (size_t i = 1; i < order.size(); i++) {
    ASSERT_FALSE(pairs[order[i]] < pairs[order[i - 1]]) << i;
  }
  // Encoding replaces what the buffer held.
  std::string out = "junk";
  EncodeDupKey("k", "d", &out);
  EXPECT_EQ(out, std::string("k\0\x01"
                             "d",
                             4));
  EncodeDupKey(std::string("\0", 1), "", &out);
  EXPECT_EQ(out, std::string("\0\xff\0\x01", 4));
}

TEST(MergedTest, DecodeDupKeyRefusesWhatIsNoEncoding) {
  std::string scratch;
  std::string_view key, data;
  for (std::string bad :
       {std::string(), std::string("abc"), std::string("a\0", 2), std::string("a\0\x02", 3),
        std::string("a\0\xff", 3), std::string("\0\xff\0", 3), std::string("\0\xff\0\x02", 4)}) {
    EXPECT_FALSE(DecodeDupKey(bad, &scratch, &key, &data)) << Show(bad);
  }
  ASSERT_TRUE(DecodeDupKey(std::string("\0\x01", 2), &scratch, &key, &data));
  EXPECT_EQ(key, "");
  EXPECT_EQ(data, "");
}

// --- Edge cases.

template <class Cursor>
void ExpectEmpty(Cursor& c, const std::string& where) {
  c.SeekToFirst();
  EXPECT_FALSE(c.Valid()) << where;
  c.SeekToLast();
  EXPECT_FALSE(c.Valid()) << where;
  for (std::string k :
       {std::string(), std::string("a"), std::string(1, '\0'), std::string("\xff\xff")}) {
    SeekTo(c, {k, ""});
    EXPECT_FALSE(c.Valid()) << where << " seek " << Show(k);
    SeekBackTo(c, {k, ""});
    EXPECT_FALSE(c.Valid()) << where << " seek for prev " << Show(k);
    SeekTo(c, {k, "x"});
    EXPECT_FALSE(c.Valid()) << where << " seek " << Show(k);
    SeekBackTo(c, {k, "x"});
    EXPECT_FALSE(c.Valid()) << where << " seek for prev " << Show(k);
  }
  c.Next();  // no-ops when not valid
  c.Prev();
  EXPECT_FALSE(c.Valid()) << where;
  EXPECT_TRUE(c.status().ok()) << where << ": " << c.status().ToString();
}

void PutLmdb(MDB_txn* txn, MDB_dbi dbi, std::string_view k, std::string_view v) {
  MDB_val kv = Val(k), vv = Val(v);
  Check(mdb_put(txn, dbi, &kv, &vv, 0), "put");
}

TEST(MergedTest, EverythingEmpty) {
  Lmdb db;
  Txn txn(db.env(), true);
  Overlay a, b;
  std::vector<std::vector<OverlayAt>> cases = {{}, {{&a, 5}}, {{&a, 5}, {&b, 3}}};
  for (const auto& ov : cases) {
    std::string where = std::to_string(ov.size()) + " overlays";
    MergedCursor c(txn.get(), db.plain(), ov, 1);
    ExpectEmpty(c, where);
    MergedDupCursor d(txn.get(), db.dup(), ov, 1);
    ExpectEmpty(d, where + " dup");
    for (std::string k : {std::string(), std::string("a"), std::string(600, 'a')}) {
      std::string_view value = "stale";
      bool found = true;
      ASSERT_TRUE(MergedGet(txn.get(), db.plain(), ov, 1, k, &value, &found).ok());
      EXPECT_FALSE(found);
      EXPECT_EQ(value, "");
    }
  }
}

TEST(MergedTest, OnlyLmdbAndOnlyOverlays) {
  Lmdb db;
  View plain = {{"a", "1"}, {std::string("a\0", 2), "2"}, {"ab", "3"}, {"\xff", "4"}};
  View dup = {{"a", "1"},
              {"a", "2"},
              {"a", "2\xff"},
              {std::string("a\0", 2), "x"},
              {"b", std::string(1, '\0')},
              {"b", "y"}};
  Overlay o;
  for (const Pair& p : plain) o.Put(1, p.first, p.second, 1);
  for (const Pair& p : dup) o.Put(2, Enc(p.first, p.second), "", 1);
  {
    Txn w(db.env(), false);
    for (const Pair& p : plain) PutLmdb(w.get(), db.plain(), p.first, p.second);
    for (const Pair& p : dup) PutLmdb(w.get(), db.dup(), p.first, p.second);
    w.Commit();
  }
  Lmdb empty;
  std::mt19937_64 rng(BaseSeed());
  std::vector<Pair> probes = {{"", ""},   {"a", ""},  {"a", "2"},      {"a", "3"},
                              {"aa", ""}, {"b", "z"}, {"\xff\xff", ""}};
  {
    Txn txn(db.env(), true);
    CheckReads<MergedCursor>(txn.get(), db.plain(), {}, 1, false, plain, probes, rng, "lmdb");
    CheckReads<MergedDupCursor>(txn.get(), db.dup(), {}, 2, true, dup, probes, rng, "lmdb dup");
  }
  Txn txn(empty.env(), true);
  std::vector<OverlayAt> ov = {{&o, 1}};
  CheckReads<MergedCursor>(txn.get(), empty.plain(), ov, 1, false, plain, probes, rng, "overlay");
  CheckReads<MergedDupCursor>(txn.get(), empty.dup(), ov, 2, true, dup, probes, rng, "overlay dup");
  // At a commit before the overlay's: nothing.
  std::vector<OverlayAt> before = {{&o, 0}};
  MergedCursor c(txn.get(), empty.plain(), before, 1);
  ExpectEmpty(c, "before");
}

TEST(MergedTest, TombstonesHideEveryLmdbEntry) {
  Lmdb db;
  std::vector<std::string> keys = {"a", "ab", std::string("a\0", 2), "b", "\xff"};
  {
    Txn w(db.env(), false);
    for (const std::string& k : keys) {
      PutLmdb(w.get(), db.plain(), k, "v" + k);
      PutLmdb(w.get(), db.dup(), k, "d1");
      PutLmdb(w.get(), db.dup(), k, "d2");
    }
    for (int i = 0; i < 300; i++) PutLmdb(w.get(), db.dup(), "many", "d" + std::to_string(i));
    w.Commit();
  }
  // Some deleted in the older overlay, the rest in the newer; one the older re-put and the
  // newer deleted again.
  Overlay older, newer;
  for (size_t i = 0; i < keys.size(); i++) {
    Overlay& o = i % 2 ? older : newer;
    uint64_t commit = i % 2 ? 1 : 2;
    o.Delete(1, keys[i], commit);
    o.Delete(2, Enc(keys[i], "d1"), commit);
    o.Delete(2, Enc(keys[i], "d2"), commit);
  }
  older.Put(1, "b", "again", 1);
  newer.Delete(1, "b", 2);
  for (int i = 0; i < 300; i++)
    (i % 3 ? older : newer).Delete(2, Enc("many", "d" + std::to_string(i)), i % 3 ? 1 : 2);
  std::vector<OverlayAt> ov = {{&newer, 2}, {&older, 1}};
  Txn txn(db.env(), true);
  MergedCursor c(txn.get(), db.plain(), ov, 1);
  ExpectEmpty(c, "plain");
  MergedDupCursor d(txn.get(), db.dup(), ov, 2);
  ExpectEmpty(d, "dup");
  for (const std::string& k : keys) {
    std::string_view value;
    bool found = true;
    ASSERT_TRUE(MergedGet(txn.get(), db.plain(), ov, 1, k, &value, &found).ok());
    EXPECT_FALSE(found) << Show(k);
  }
  // Read before the newer overlay's commit, its tombstones are not there yet.
  std::vector<OverlayAt> at1 = {{&newer, 1}, {&older, 1}};
  std::mt19937_64 rng(BaseSeed());
  const std::string a0("a\0", 2);
  View want = {{"a", "va"}, {a0, "v" + a0}, {"b", "again"}, {"\xff", "v\xff"}};
  CheckReads<MergedCursor>(txn.get(), db.plain(), at1, 1, false, want,
                           {{"a", ""}, {"ab", ""}, {"c", ""}}, rng, "at 1");
}

TEST(MergedTest, OnlyNeighbouringTablesInTheOverlays) {
  Lmdb db;
  {
    Txn w(db.env(), false);
    PutLmdb(w.get(), db.plain(), "m", "lmdb");
    PutLmdb(w.get(), db.dup(), "m", "lmdb");
    w.Commit();
  }
  Overlay o;
  const uint32_t tables[] = {0, 4, 6, UINT32_MAX};
  for (uint32_t t : tables) {
    for (std::string k : {std::string(), std::string("a"), std::string("m"), std::string("z")}) {
      o.Put(t, k, "other table", 1);
      o.Put(t, Enc(k, "lmdb"), "", 1);
    }
  }
  for (uint32_t t : tables) {
    o.Delete(t, "m", 2);
    o.Delete(t, Enc("m", "lmdb"), 2);
  }
  std::vector<OverlayAt> ov = {{&o, 2}};
  std::mt19937_64 rng(BaseSeed());
  std::vector<Pair> probes = {{"", ""}, {"a", ""}, {"m", ""}, {"m", "lmdb"}, {"z", ""}};
  Txn txn(db.env(), true);
  for (uint32_t t : {1u, 5u, UINT32_MAX - 1}) {
    std::string where = "table " + std::to_string(t);
    CheckReads<MergedCursor>(txn.get(), db.plain(), ov, t, false, {{"m", "lmdb"}}, probes, rng,
                             where);
    CheckReads<MergedDupCursor>(txn.get(), db.dup(), ov, t, true, {{"m", "lmdb"}}, probes, rng,
                                where + " dup");
  }
  // And with LMDB empty too.
  Lmdb empty;
  Txn etxn(empty.env(), true);
  MergedCursor c(etxn.get(), empty.plain(), ov, 5);
  ExpectEmpty(c, "empty lmdb");
  MergedDupCursor d(etxn.get(), empty.dup(), ov, 5);
  ExpectEmpty(d, "empty lmdb dup");
}

// GET_BOTH_RANGE finds nothing when the key is absent or all its data are smaller: the seek
// must then go on to the next key. With single values, sub-pages and a sub-database.
TEST(MergedTest, DupSeekAcrossKeys) {
  Lmdb db;
  {
    Txn w(db.env(), false);
    PutLmdb(w.get(), db.dup(), "k", "b");
    PutLmdb(w.get(), db.dup(), "k", "d");
    PutLmdb(w.get(), db.dup(), "l", "a");  // a single value
    for (int i = 0; i < 500; i++)
      PutLmdb(w.get(), db.dup(), "m", "v" + std::to_string(1000 + 2 * i));
    PutLmdb(w.get(), db.dup(), "n", "a");
    w.Commit();
  }
  Txn txn(db.env(), true);
  MergedDupCursor c(txn.get(), db.dup(), {}, 2);
  auto at = [&](std::string_view k, std::string_view d) {
    return c.Valid() && c.key() == k && c.data() == d;
  };
  c.Seek("k", "e");
  EXPECT_TRUE(at("l", "a"));
  c.Seek("k", "c");
  EXPECT_TRUE(at("k", "d"));
  c.Seek("j", "z");
  EXPECT_TRUE(at("k", "b"));
  c.Seek("k", "a");
  EXPECT_TRUE(at("k", "b"));
  c.Seek("l", "b");
  EXPECT_TRUE(at("m", "v1000"));
  c.Seek("m", "v1001");
  EXPECT_TRUE(at("m", "v1002"));
  c.Seek("m", "v1999");
  EXPECT_TRUE(at("n", "a"));
  c.Seek("n", "b");
  EXPECT_FALSE(c.Valid());
  c.SeekForPrev("k", "c");
  EXPECT_TRUE(at("k", "b"));
  c.SeekForPrev("k", "a");
  EXPECT_FALSE(c.Valid());
  c.SeekForPrev("l", "");
  EXPECT_TRUE(at("k", "d"));
  c.SeekForPrev("m", "v1001");
  EXPECT_TRUE(at("m", "v1000"));
  c.SeekForPrev("m", "");
  EXPECT_TRUE(at("l", "a"));
  c.Prev();
  EXPECT_TRUE(at("k", "d"));
  c.SeekForPrev("n", "");
  EXPECT_TRUE(at("m", "v1998"));
  c.Next();
  EXPECT_TRUE(at("n", "a"));
  c.Prev();
  EXPECT_TRUE(at("m", "v1998"));
  c.SeekForPrev("zz", "");
  EXPECT_TRUE(at("n", "a"));
  EXPECT_TRUE(c.status().ok());
}

// A newer overlay's value beats an older one's and LMDB's; its tombstone hides both; and
// the older's tombstone is undone by the newer's put.
TEST(MergedTest, NewestSourceDecides) {
  Lmdb db;
  {
    Txn w(db.env(), false);
    for (std::string k : {"a", "b", "c", "d", "e"}) PutLmdb(w.get(), db.plain(), k, "lmdb " + k);
    w.Commit();
  }
  Overlay older, newer;
  older.Put(1, "a", "older a", 10);
  older.Delete(1, "b", 10);
  older.Put(1, "c", "older c", 10);
  older.Delete(1, "d", 10);
  older.Put(1, "f", "older f", 11);
  newer.Put(1, "a", "newer a", 12);
  newer.Put(1, "b", "newer b", 12);  // re-puts what the older deleted
  newer.Delete(1, "c", 12);          // deletes what the older put
  newer.Delete(1, "e", 13);          // deletes what LMDB has
  newer.Delete(1, "f", 13);
  newer.Delete(1, "g", 13);  // deletes what nobody has
  std::mt19937_64 rng(BaseSeed());
  std::vector<Pair> probes = {{"a", ""}, {"b", ""}, {"c", ""}, {"d", ""}, {"e", ""},
                              {"f", ""}, {"g", ""}, {"", ""},  {"bb", ""}};
  Txn txn(db.env(), true);
  std::vector<OverlayAt> at13 = {{&newer, 13}, {&older, 11}};
  CheckReads<MergedCursor>(txn.get(), db.plain(), at13, 1, false,
                           {{"a", "newer a"}, {"b", "newer b"}}, probes, rng, "at 13");
  std::vector<OverlayAt> at12 = {{&newer, 12}, {&older, 11}};
  CheckReads<MergedCursor>(txn.get(), db.plain(), at12, 1, false,
                           {{"a", "newer a"}, {"b", "newer b"}, {"e", "lmdb e"}, {"f", "older f"}},
                           probes, rng, "at 12");
  std::vector<OverlayAt> at10 = {{&newer, 10}, {&older, 10}};
  CheckReads<MergedCursor>(txn.get(), db.plain(), at10, 1, false,
                           {{"a", "older a"}, {"c", "older c"}, {"e", "lmdb e"}}, probes, rng,
                           "at 10");
}

// The target of a seek may be a view of the cursor's own key and data, which the seek moves.
TEST(MergedTest, SeekToItsOwnPosition) {
  Lmdb db;
  {
    Txn w(db.env(), false);
    PutLmdb(w.get(), db.dup(), std::string("a\0b", 3), "lmdb");
    PutLmdb(w.get(), db.plain(), std::string("a\0b", 3), "lmdb");
    w.Commit();
  }
  Overlay o;
  o.Put(2, Enc(std::string("a\0a", 3), "ov"), "", 1);
  o.Put(2, Enc(std::string("a\0c", 3), "ov"), "", 1);
  o.Put(1, std::string("a\0a", 3), "ov", 1);
  std::vector<OverlayAt> ov = {{&o, 1}};
  Txn txn(db.env(), true);
  MergedDupCursor d(txn.get(), db.dup(), ov, 2);
  int steps = 0;
  for (d.SeekToFirst(); d.Valid() && steps < 10; d.Next(), steps++) {
    std::string key(d.key()), data(d.data());
    d.Seek(d.key(), d.data());
    ASSERT_TRUE(d.Valid());
    EXPECT_EQ(d.key(), key);
    EXPECT_EQ(d.data(), data);
    d.SeekForPrev(d.key(), d.data());
    ASSERT_TRUE(d.Valid());
    EXPECT_EQ(d.key(), key);
    EXPECT_EQ(d.data(), data);
  }
  EXPECT_EQ(steps, 3);
  // Past every pair of the key: the overlay's source moves to the next key (its scratch
  // then holds another key) while LMDB still seeks by the old one.
  d.Seek(std::string("a\0a", 3), "ov");
  ASSERT_TRUE(d.Valid());
  d.Seek(d.key(), "\xff\xff");
  ASSERT_TRUE(d.Valid());
  EXPECT_EQ(d.key(), std::string("a\0b", 3));
  EXPECT_EQ(d.data(), "lmdb");
  d.SeekForPrev(std::string("a\0c", 3), "ov");
  ASSERT_TRUE(d.Valid());
  d.SeekForPrev(d.key(), "");
  ASSERT_TRUE(d.Valid());
  EXPECT_EQ(d.key(), std::string("a\0b", 3));
  EXPECT_EQ(d.data(), "lmdb");
  MergedCursor c(txn.get(), db.plain(), ov, 1);
  int seen = 0;
  for (c.SeekToFirst(); c.Valid() && seen < 10; c.Next(), seen++) {
    std::string key(c.key());
    c.Seek(c.key());
    ASSERT_TRUE(c.Valid());
    EXPECT_EQ(c.key(), key);
  }
  EXPECT_EQ(seen, 2);
}

// An LMDB error is reported by status(), and the cursor is not valid.
TEST(MergedTest, LmdbErrorsAreReported) {
  Lmdb db;
  Txn txn(db.env(), true);
  Overlay o;
  o.Put(1, "a", "v", 1);
  o.Put(1, Enc("a", "d"), "", 1);
  std::vector<OverlayAt> ov = {{&o, 1}};
  const MDB_dbi bad = 77;  // never opened
  MergedCursor c(txn.get(), bad, ov, 1);
  EXPECT_FALSE(c.status().ok());
  c.SeekToFirst();
  EXPECT_FALSE(c.Valid());
  c.Seek("a");
  EXPECT_FALSE(c.Valid());
  EXPECT_EQ(c.status().code(), Code::kInternal) << c.status().ToString();
  MergedDupCursor d(txn.get(), bad, ov, 1);
  d.SeekToLast();
  EXPECT_FALSE(d.Valid());
  EXPECT_FALSE(d.status().ok());
  // A point read the overlay answers needs no LMDB; one it does not returns the error.
  std::string_view value;
  bool found = false;
  ASSERT_TRUE(MergedGet(txn.get(), bad, ov, 1, "a", &value, &found).ok());
  EXPECT_TRUE(found);
  EXPECT_EQ(value, "v");
  EXPECT_FALSE(MergedGet(txn.get(), bad, ov, 1, "b", &value, &found).ok());
  EXPECT_FALSE(found);
}

// A malformed key in a DUPSORT table's overlay (a bug) is an error, not a wrong answer.
TEST(MergedTest, MalformedOverlayPairIsAnError) {
  Lmdb db;
  Txn txn(db.env(), true);
  Overlay o;
  o.Put(2, "no terminator", "", 1);
  std::vector<OverlayAt> ov = {{&o, 1}};
  MergedDupCursor d(txn.get(), db.dup(), ov, 2);
  d.SeekToFirst();
  EXPECT_FALSE(d.Valid());
  EXPECT_EQ(d.status().code(), Code::kInternal);
}

}  // namespace
}  // namespace cairn::internal

// Overlay (engine/src/overlay.h): the in-memory versions of commits not yet checkpointed.
// Against a plain model (random writes, reads and iterations at random commits), with
// readers racing one writer (run under ThreadSanitizer too), and at the edges: empty
// tables between full ones, refused commits, deep version chains.
#include "overlay.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace cairn::internal {
namespace {

using State = Overlay::State;

// What a reader should see of a key: the state, the value and the commit that wrote it.
struct Seen {
  State state = State::kAbsent;
  std::string value;
  uint64_t commit = 0;
  bool operator==(const Seen&) const = default;
};

std::ostream& operator<<(std::ostream& os, const Seen& s) {
  os << (s.state == State::kAbsent ? "absent" : s.state == State::kValue ? "value" : "deleted");
  if (s.state == State::kValue) {
    os << " (" << s.value.size() << " bytes: " << testing::PrintToString(s.value.substr(0, 20))
       << ")";
  }
  return os << " @" << s.commit;
}

Seen ToSeen(const Overlay::Found& f) { return {f.state, std::string(f.value), f.commit}; }

// One table's visible keys at a commit, in order.
using View = std::vector<std::pair<std::string, Seen>>;

View Forward(const Overlay& o, uint32_t table, uint64_t at) {
  View out;
  Overlay::Iterator it = o.NewIterator(table, at);
  for (it.SeekToFirst(); it.Valid(); it.Next()) out.emplace_back(it.key(), ToSeen(it.found()));
  return out;
}

View Backward(const Overlay& o, uint32_t table, uint64_t at) {
  View out;
  Overlay::Iterator it = o.NewIterator(table, at);
  for (it.SeekToLast(); it.Valid(); it.Prev()) out.emplace_back(it.key(), ToSeen(it.found()));
  return View(out.rbegin(), out.rend());
}

// The model: every version of every key, None for a tombstone.
using Versions = std::map<uint64_t, std::optional<std::string>>;
using Model = std::map<std::pair<uint32_t, std::string>, Versions>;

Seen ModelGet(const Model& m, uint32_t table, const std::string& key, uint64_t at) {
  auto it = m.find({table, key});
  if (it == m.end()) return {};
  auto v = it->second.upper_bound(at);
  if (v == it->second.begin()) return {};
  --v;
  if (!v->second) return {State::kDeleted, "", v->first};
  return {State::kValue, *v->second, v->first};
}

View ModelView(const Model& m, uint32_t table, uint64_t at) {
  View out;
  for (auto it = m.lower_bound({table, std::string()}); it != m.end() && it->first.first == table;
       ++it) {
    Seen s = ModelGet(m, table, it->first.second, at);
    if (s.state != State::kAbsent) out.emplace_back(it->first.second, s);
  }
  return out;
}

std::string RandomBytes(std::mt19937_64& rng, size_t n) {
  std::string s(n, '\0');
  for (char& c : s) c = char(rng());
  return s;
}

// Checks an iterator positioned by a seek against the expected index into `view` (or
// view.size() for not valid), then steps a few times forwards or backwards from there.
void CheckFrom(Overlay::Iterator it, const View& view, size_t want, std::mt19937_64& rng,
               const std::string& where) {
  bool forward = rng() % 2 == 0;
  for (int step = 0; step < 4; step++) {
    if (want >= view.size()) {
      ASSERT_FALSE(it.Valid()) << where << " step " << step << " at "
                               << testing::PrintToString(std::string(it.key()));
      return;
    }
    ASSERT_TRUE(it.Valid()) << where << " step " << step << " wants "
                            << testing::PrintToString(view[want].first);
    ASSERT_EQ(std::string(it.key()), view[want].first) << where << " step " << step;
    ASSERT_EQ(ToSeen(it.found()), view[want].second) << where << " step " << step;
    if (forward) {
      it.Next();
      want++;
    } else {
      it.Prev();
      want = want == 0 ? view.size() : want - 1;
    }
  }
}

TEST(OverlayTest, MatchesAModel) {
  const uint32_t tables[] = {0, 1, 2, 7, UINT32_MAX};
  std::mt19937_64 rng(20240611);
  // A small key space so that keys repeat: prefixes of each other, the empty key, bytes 0x00
  // and 0xff (0xff must sort after everything, as unsigned), a key near the maximum size.
  std::vector<std::string> keys = {"",      "a",    "ab",       "abc",  "b",
                                   "a\xff", "\xff", "\xff\xff", "\x7f", "\x80"};
  for (std::string k : {std::string(1, '\0'), std::string(2, '\0'), std::string("a\0", 2)}) {
    keys.push_back(k);
  }
  keys.push_back(std::string(600, 'k'));
  while (keys.size() < 40) keys.push_back(RandomBytes(rng, 1 + rng() % 6));
  // Keys to probe that are not written (or only sometimes): neighbours of written ones.
  std::vector<std::string> probes = keys;
  probes.push_back("aa");
  probes.push_back(std::string(3, '\0'));
  probes.push_back("\xff\xff\xff");
  probes.push_back(std::string(601, 'k'));
  for (int i = 0; i < 10; i++) probes.push_back(RandomBytes(rng, rng() % 4));

  Overlay o;
  Model model;
  uint64_t commit = 0, kept = 0;  // kept: the newest commit not undone
  bool reuse = false;             // write the commit just undone anew
  size_t large = 0, same_commit_rewrites = 0, checks = 0, undos = 0, reused = 0;
  for (int step = 0; step < 4000; step++) {
    if (reuse) {
      reused++;
    } else {
      commit += 1 + (rng() % 8 == 0 ? rng() % 5 : 0);  // sometimes gaps between commits
    }
    reuse = false;
    int writes = 1 + int(rng() % 4);
    uint32_t table = 0;
    std::string key;
    std::vector<std::pair<uint32_t, std::string>> written;
    for (int w = 0; w < writes; w++) {
      // Now and then write again the key this commit just wrote, so the commit rewrites it.
      if (w == 0 || rng() % 3 != 0) {
        table = tables[rng() % std::size(tables)];
        key = keys[rng() % keys.size()];
      }
      written.emplace_back(table, key);
      Versions& versions = model[{table, key}];
      if (versions.count(commit)) same_commit_rewrites++;
      if (rng() % 4 == 0) {
        ASSERT_TRUE(o.Delete(table, key, commit));
        versions[commit] = std::nullopt;
      } else {
        size_t size = rng() % 300 == 0 ? 100'000 + rng() % 1000 : rng() % 40;
        if (size >= 100'000) large++;
        std::string value = RandomBytes(rng, size);
        ASSERT_TRUE(o.Put(table, key, value, commit));
        versions[commit] = value;
      }
    }
    if (rng() % 8 == 0) {
      // A transaction that failed after writing: its commit is taken back (the keys it
      // added stay, without versions), and is sometimes written anew.
      ASSERT_FALSE(o.Undo(commit - 1));
      ASSERT_TRUE(o.Undo(commit));
      ASSERT_FALSE(o.Undo(commit));
      for (const auto& tk : written) model[tk].erase(commit);
      ASSERT_EQ(o.last_commit(), kept);
      undos++;
      reuse = rng() % 2 == 0;
    } else {
      kept = commit;
    }
    if (rng() % 10 == 0 && kept == commit) {
      // An older commit is refused and changes nothing.
      size_t entries = o.entries(), memory = o.memory_bytes();
      ASSERT_FALSE(o.Put(tables[0], "never", "x", commit - 1));
      ASSERT_FALSE(o.Delete(tables[0], keys[0], commit - 1));
      ASSERT_EQ(o.entries(), entries);
      ASSERT_EQ(o.memory_bytes(), memory);
      ASSERT_EQ(o.last_commit(), commit);
      ASSERT_EQ(o.Get(tables[0], "never", UINT64_MAX).state, State::kAbsent);
    }
    ASSERT_EQ(o.entries(), model.size());
    ASSERT_EQ(o.last_commit(), kept);
    if (rng() % 25 != 0 && step != 3999) continue;

    checks++;
    const uint64_t ats[] = {
        0,      rng() % (commit + 1),    commit - rng() % std::min<uint64_t>(commit, 5),
        commit, commit + 1 + rng() % 10, UINT64_MAX};
    for (uint64_t at : ats) {
      std::string where = "step " + std::to_string(step) + " at " + std::to_string(at);
      for (uint32_t table : tables) {
        std::string in = where + " table " + std::to_string(table);
        for (int q = 0; q < 10; q++) {
          const std::string& key = probes[rng() % probes.size()];
          ASSERT_EQ(ToSeen(o.Get(table, key, at)), ModelGet(model, table, key, at))
              << in << " key " << testing::PrintToString(key);
        }
        View view = ModelView(model, table, at);
        ASSERT_EQ(Forward(o, table, at), view) << in;
        ASSERT_EQ(Backward(o, table, at), view) << in;
        for (int q = 0; q < 6; q++) {
          std::string key = probes[rng() % probes.size()];
          if (rng() % 3 == 0 && !view.empty()) key = view[rng() % view.size()].first;
          size_t ge = 0;  // the first visible key >= key
          while (ge < view.size() && view[ge].first < key) ge++;
          Overlay::Iterator it = o.NewIterator(table, at);
          it.Seek(key);
          CheckFrom(it, view, ge, rng, in + " Seek " + testing::PrintToString(key));
          // The last visible key <= key: the same one if equal, else the one before.
          size_t le = ge < view.size() && view[ge].first == key ? ge
                      : ge == 0                                 ? view.size()
                                                                : ge - 1;
          it.SeekForPrev(key);
          CheckFrom(it, view, le, rng, in + " SeekForPrev " + testing::PrintToString(key));
          if (HasFatalFailure()) return;
        }
      }
    }
  }
  // The run exercised what it means to.
  EXPECT_GT(large, 5u);
  EXPECT_GT(same_commit_rewrites, 100u);
  EXPECT_GT(checks, 100u);
  EXPECT_GT(undos, 300u);
  EXPECT_GT(reused, 100u);
}

// The writes of commit c, the same for the writer and for the readers replaying them:
// table 1 gets key c % kKeys (sometimes first with a value the commit then overwrites),
// every third commit a delete of another such key, and every fourth a key of its own (so
// that the skiplist keeps growing under the readers); tables 0 and 2 on either side get
// keys too, so that iterating table 1 must stop at its edges.
constexpr uint64_t kKeys = 300;

struct Op {
  uint32_t table;
  std::string key;
  std::optional<std::string> value;  // none: delete
};

std::vector<Op> CommitOps(uint64_t c) {
  std::vector<Op> ops;
  std::string value = "v" + std::to_string(c);
  if (c % 5000 == 0) value.append(50'000, char(c));  // a large value now and then
  if (c % 5 == 0) ops.push_back({1, std::to_string(c % kKeys), "overwritten" + value});
  ops.push_back({1, std::to_string(c % kKeys), value});
  if (c % 3 == 0) ops.push_back({1, std::to_string(c * 7 % kKeys), std::nullopt});
  if (c % 4 == 0) ops.push_back({1, "n" + std::to_string(c), value});
  ops.push_back({c % 2 == 0 ? 0u : 2u, std::to_string(c % 97), value});
  return ops;
}

// Table 1's expected state, advanced commit by commit.
using Expected = std::map<std::string, Seen>;

void Apply(Expected* e, uint64_t c) {
  for (const Op& op : CommitOps(c)) {
    if (op.table != 1) continue;
    (*e)[op.key] = op.value ? Seen{State::kValue, *op.value, c} : Seen{State::kDeleted, "", c};
  }
}

// Compares what a reader sees at `at` with `e`; returns a description of the first
// difference, or "" (gtest's assertions are usable from other threads, but a message
// naming the commit is clearer).
std::string Check(const Overlay& o, const Expected& e, uint64_t at, std::mt19937_64& rng) {
  View want(e.begin(), e.end());
  View got = Forward(o, 1, at);
  if (got != want) {
    return "forward at " + std::to_string(at) + ": " + std::to_string(got.size()) + " keys, " +
           std::to_string(want.size()) + " expected";
  }
  if (rng() % 4 == 0 && Backward(o, 1, at) != want) return "backward at " + std::to_string(at);
  for (int q = 0; q < 8; q++) {
    std::string key = std::to_string(rng() % (kKeys + 10));
    auto it = e.find(key);
    Seen expected = it == e.end() ? Seen{} : it->second;
    if (ToSeen(o.Get(1, key, at)) != expected) return "Get " + key + " at " + std::to_string(at);
  }
  return "";
}

TEST(OverlayTest, ReadersAtPublishedCommitsSeeExactlyThoseCommits) {
  Overlay o;
  std::atomic<uint64_t> published{0};
  std::atomic<bool> done{false};
  // Bounded by time (slower under sanitizers) and by commits (the memory they take).
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(1000);
  constexpr uint64_t kMaxCommits = 100'000;

  std::thread writer([&] {
    for (uint64_t c = 1; c <= kMaxCommits && std::chrono::steady_clock::now() < deadline; c++) {
      for (const Op& op : CommitOps(c)) {
        bool ok = op.value ? o.Put(op.table, op.key, *op.value, c) : o.Delete(op.table, op.key, c);
        if (!ok) ADD_FAILURE() << "write of commit " << c << " refused";
      }
      published.store(c, std::memory_order_release);
      // Paced, so that the readers read at many commits while the writer goes on.
      if (c % 64 == 0) std::this_thread::sleep_for(std::chrono::microseconds(100));
    }
    done.store(true, std::memory_order_release);
  });

  constexpr int kReaders = 3;
  std::vector<std::string> failures(kReaders);
  std::vector<uint64_t> rounds(kReaders), last_seen(kReaders);
  std::vector<std::thread> readers;
  for (int r = 0; r < kReaders; r++) {
    readers.emplace_back([&, r] {
      std::mt19937_64 rng(r);
      Expected e;
      uint64_t at = 0;
      // A commit read before, kept with its expected state, to read at again later: the
      // answer at a published commit must not change as the writer goes on.
      uint64_t old_at = 0;
      Expected old_e;
      for (;;) {
        bool finished = done.load(std::memory_order_acquire);
        uint64_t now = published.load(std::memory_order_acquire);
        while (at < now) Apply(&e, ++at);
        std::string failure = Check(o, e, at, rng);
        if (failure.empty()) failure = Check(o, old_e, old_at, rng);
        if (!failure.empty()) {
          failures[r] = failure;
          return;
        }
        if (rng() % 8 == 0) {
          old_at = at;
          old_e = e;
        }
        rounds[r]++;
        if (finished) break;
      }
      last_seen[r] = at;
    });
  }
  writer.join();
  for (std::thread& t : readers) t.join();
  uint64_t commits = published.load();
  for (int r = 0; r < kReaders; r++) {
    EXPECT_EQ(failures[r], "") << "reader " << r;
    EXPECT_EQ(last_seen[r], commits) << "reader " << r << " did not read the last commit";
    EXPECT_GT(rounds[r], 10u) << "reader " << r;
  }
  EXPECT_GT(commits, 1000u);
  EXPECT_EQ(o.last_commit(), commits);
}

TEST(OverlayTest, EmptyOverlay) {
  Overlay o;
  EXPECT_EQ(o.entries(), 0u);
  EXPECT_EQ(o.last_commit(), 0u);
  for (uint64_t at : {uint64_t(0), uint64_t(1), UINT64_MAX}) {
    Overlay::Found f = o.Get(0, "", at);
    EXPECT_EQ(f.state, State::kAbsent);
    EXPECT_EQ(f.commit, 0u);
    EXPECT_EQ(o.Get(UINT32_MAX, "key", at).state, State::kAbsent);
    Overlay::Iterator it = o.NewIterator(0, at);
    EXPECT_FALSE(it.Valid());
    it.SeekToFirst();
    EXPECT_FALSE(it.Valid());
    it.SeekToLast();
    EXPECT_FALSE(it.Valid());
    it.Seek("");
    EXPECT_FALSE(it.Valid());
    it.SeekForPrev("\xff\xff");
    EXPECT_FALSE(it.Valid());
  }
}

TEST(OverlayTest, TablesAreSeparate) {
  Overlay o;
  // Tables 0, 2 and UINT32_MAX have keys; 1 and UINT32_MAX - 1, between them, have none.
  // The same key bytes in each, so that only the table tells them apart.
  for (uint32_t table : {0u, 2u, UINT32_MAX}) {
    for (std::string key : {"", "a", "b", "\xff"}) {
      ASSERT_TRUE(o.Put(table, key, std::to_string(table) + key, 1));
    }
  }
  ASSERT_TRUE(o.Delete(2, "c", 2));
  EXPECT_EQ(o.entries(), 13u);
  for (uint32_t empty : {1u, 3u, UINT32_MAX - 1}) {
    EXPECT_EQ(Forward(o, empty, UINT64_MAX), View{}) << empty;
    EXPECT_EQ(Backward(o, empty, UINT64_MAX), View{}) << empty;
    Overlay::Iterator it = o.NewIterator(empty, UINT64_MAX);
    for (std::string key : {"", "a", "\xff", "\xff\xff"}) {
      it.Seek(key);
      EXPECT_FALSE(it.Valid()) << empty;
      it.SeekForPrev(key);
      EXPECT_FALSE(it.Valid()) << empty;
      EXPECT_EQ(o.Get(empty, key, UINT64_MAX).state, State::kAbsent);
    }
  }
  for (uint32_t table : {0u, 2u, UINT32_MAX}) {
    std::string t = std::to_string(table);
    View want = {{"", {State::kValue, t, 1}},
                 {"a", {State::kValue, t + "a", 1}},
                 {"b", {State::kValue, t + "b", 1}}};
    if (table == 2) want.push_back({"c", {State::kDeleted, "", 2}});
    want.push_back({"\xff", {State::kValue, t + "\xff", 1}});
    EXPECT_EQ(Forward(o, table, UINT64_MAX), want) << table;
    EXPECT_EQ(Backward(o, table, UINT64_MAX), want) << table;
    // Stepping off either end of a table ends the iteration instead of entering the next.
    Overlay::Iterator it = o.NewIterator(table, UINT64_MAX);
    it.SeekToFirst();
    ASSERT_TRUE(it.Valid());
    it.Prev();
    EXPECT_FALSE(it.Valid());
    it.SeekToLast();
    ASSERT_TRUE(it.Valid());
    EXPECT_EQ(it.key(), "\xff");
    it.Next();
    EXPECT_FALSE(it.Valid());
    it.Seek(std::string_view("\xff\x00", 2));
    EXPECT_FALSE(it.Valid());
    it.SeekForPrev(std::string_view("\0", 1));
    ASSERT_TRUE(it.Valid());
    EXPECT_EQ(it.key(), "");
  }
  // At commit 1 the tombstone of commit 2 is not there yet.
  EXPECT_EQ(Forward(o, 2, 1).size(), 4u);
  EXPECT_EQ(o.Get(2, "c", 1).state, State::kAbsent);
  EXPECT_EQ(o.Get(2, "c", 2).state, State::kDeleted);
}

TEST(OverlayTest, OlderCommitsAreRefused) {
  Overlay o;
  EXPECT_FALSE(o.Put(0, "k", "v", 0)) << "commit 0 would be visible to a reader at 0";
  EXPECT_FALSE(o.Delete(0, "k", 0));
  EXPECT_EQ(o.entries(), 0u);
  ASSERT_TRUE(o.Put(0, "k", "five", 5));
  ASSERT_TRUE(o.Put(0, "k", "five again", 5));  // the same commit is allowed
  size_t memory = o.memory_bytes();
  EXPECT_FALSE(o.Put(0, "k", "four", 4));
  EXPECT_FALSE(o.Put(0, "other", "four", 4));
  EXPECT_FALSE(o.Delete(0, "k", 4));
  EXPECT_FALSE(o.Delete(0, "other", 1));
  EXPECT_EQ(o.entries(), 1u);
  EXPECT_EQ(o.last_commit(), 5u);
  EXPECT_EQ(o.memory_bytes(), memory);
  EXPECT_EQ(ToSeen(o.Get(0, "k", UINT64_MAX)), (Seen{State::kValue, "five again", 5}));
  EXPECT_EQ(ToSeen(o.Get(0, "k", 4)), Seen{});
  EXPECT_EQ(o.Get(0, "other", UINT64_MAX).state, State::kAbsent);
  EXPECT_EQ(Forward(o, 0, UINT64_MAX).size(), 1u);
}

TEST(OverlayTest, RewritesByOneCommitKeepTheLast) {
  Overlay o;
  ASSERT_TRUE(o.Put(3, "k", "one", 1));
  ASSERT_TRUE(o.Put(3, "k", "two", 2));
  ASSERT_TRUE(o.Delete(3, "k", 2));
  ASSERT_TRUE(o.Put(3, "k", "two, last", 2));
  ASSERT_TRUE(o.Delete(3, "j", 2));
  ASSERT_TRUE(o.Put(3, "j", "j", 2));
  ASSERT_TRUE(o.Delete(3, "j", 2));
  EXPECT_EQ(o.entries(), 2u);
  EXPECT_EQ(ToSeen(o.Get(3, "k", 1)), (Seen{State::kValue, "one", 1}));
  EXPECT_EQ(ToSeen(o.Get(3, "k", 2)), (Seen{State::kValue, "two, last", 2}));
  EXPECT_EQ(ToSeen(o.Get(3, "j", 2)), (Seen{State::kDeleted, "", 2}));
  EXPECT_EQ(o.Get(3, "j", 1).state, State::kAbsent);
  EXPECT_EQ(Forward(o, 3, 1), (View{{"k", {State::kValue, "one", 1}}}));
  EXPECT_EQ(Forward(o, 3, 2),
            (View{{"j", {State::kDeleted, "", 2}}, {"k", {State::kValue, "two, last", 2}}}));
}

TEST(OverlayTest, UndoTakesBackTheNewestCommitOnly) {
  Overlay o;
  ASSERT_TRUE(o.Put(3, "k", "one", 1));
  ASSERT_TRUE(o.Put(3, "k", "two", 2));
  ASSERT_TRUE(o.Delete(3, "k", 2));  // rewritten by the same commit
  ASSERT_TRUE(o.Put(3, "new", "x", 2));
  ASSERT_TRUE(o.Delete(4, "gone", 2));
  EXPECT_FALSE(o.Undo(1));  // not the newest
  ASSERT_TRUE(o.Undo(2));
  EXPECT_EQ(o.last_commit(), 1u);
  EXPECT_EQ(ToSeen(o.Get(3, "k", 2)), (Seen{State::kValue, "one", 1}));
  EXPECT_EQ(o.Get(3, "new", UINT64_MAX).state, State::kAbsent);
  EXPECT_EQ(o.Get(4, "gone", UINT64_MAX).state, State::kAbsent);
  // The added keys stay as entries, and iterations pass over them both ways.
  EXPECT_EQ(o.entries(), 3u);
  EXPECT_EQ(Forward(o, 3, UINT64_MAX), (View{{"k", {State::kValue, "one", 1}}}));
  EXPECT_EQ(Backward(o, 3, UINT64_MAX), (View{{"k", {State::kValue, "one", 1}}}));
  EXPECT_TRUE(Forward(o, 4, UINT64_MAX).empty());
  // The commit number is free again, and an older one is still refused.
  EXPECT_FALSE(o.Put(3, "k", "zero", 0));
  ASSERT_TRUE(o.Put(3, "new", "again", 2));
  EXPECT_EQ(ToSeen(o.Get(3, "new", 2)), (Seen{State::kValue, "again", 2}));
  EXPECT_EQ(ToSeen(o.Get(3, "k", 2)), (Seen{State::kValue, "one", 1}));
  EXPECT_EQ(o.entries(), 3u);
  // Undoing a commit that wrote nothing since: refused.
  ASSERT_TRUE(o.Undo(2));
  EXPECT_FALSE(o.Undo(2));
  EXPECT_FALSE(o.Undo(1));  // the newest again, but finished before: Undo reaches back one commit
}

TEST(OverlayTest, MemoryGrowsWithData) {
  Overlay o;
  size_t start = o.memory_bytes();
  EXPECT_GT(start, 0u);  // the first block (it holds the skiplist's head)
  size_t last = start;
  std::string value(1000, 'v');
  for (int i = 0; i < 2000; i++) {
    ASSERT_TRUE(o.Put(0, "key" + std::to_string(i), value, 1 + i));
    ASSERT_GE(o.memory_bytes(), last);
    last = o.memory_bytes();
  }
  EXPECT_GE(o.memory_bytes() - start, 2000u * 1000u);
  // A large value costs at least its size at once.
  std::string big(4 << 20, 'b');
  size_t before = o.memory_bytes();
  ASSERT_TRUE(o.Put(0, "big", big, 5000));
  EXPECT_GE(o.memory_bytes() - before, big.size());
  Overlay::Found f = o.Get(0, "big", 5000);
  ASSERT_EQ(f.state, State::kValue);
  EXPECT_EQ(f.value, big);
  // Rewrites of one key by one commit keep costing memory (the replaced versions stay).
  before = o.memory_bytes();
  for (int i = 0; i < 500; i++) ASSERT_TRUE(o.Put(0, "same", value, 5001));
  EXPECT_GE(o.memory_bytes() - before, 400u * 1000u);
  EXPECT_EQ(o.entries(), 2002u);
}

TEST(OverlayTest, DeepVersionChain) {
  Overlay o;
  // One key written by every other commit, 1, 3, 5, ...: a tombstone every seventh write;
  // another key around it, so that iteration crosses it.
  constexpr uint64_t kWrites = 5000;
  ASSERT_TRUE(o.Put(9, "a", "before", 1));
  for (uint64_t i = 0; i < kWrites; i++) {
    uint64_t c = 1 + 2 * i;
    if (i % 7 == 6) {
      ASSERT_TRUE(o.Delete(9, "deep", c));
    } else {
      ASSERT_TRUE(o.Put(9, "deep", "v" + std::to_string(c), c));
    }
  }
  ASSERT_TRUE(o.Put(9, "z", "after", 2 * kWrites + 5));
  EXPECT_EQ(o.entries(), 3u);
  for (uint64_t at = 0; at <= 2 * kWrites + 1; at++) {
    Seen want;
    if (at >= 1) {
      uint64_t i = std::min((at - 1) / 2, kWrites - 1);  // the newest write at or before `at`
      uint64_t c = 1 + 2 * i;
      want = i % 7 == 6 ? Seen{State::kDeleted, "", c}
                        : Seen{State::kValue, "v" + std::to_string(c), c};
    }
    ASSERT_EQ(ToSeen(o.Get(9, "deep", at)), want) << "at " << at;
    if (at % 97 == 0 && at >= 1) {
      View view = {{"a", {State::kValue, "before", 1}}, {"deep", want}};
      ASSERT_EQ(Forward(o, 9, at), view) << "at " << at;
      ASSERT_EQ(Backward(o, 9, at), view) << "at " << at;
    }
  }
  EXPECT_EQ(Forward(o, 9, UINT64_MAX).size(), 3u);
}

}  // namespace
}  // namespace cairn::internal

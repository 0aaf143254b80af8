#include "overlay.h"

#include <cstring>
#include <new>
#include <type_traits>

namespace cairn::internal {

// A version of a key: immutable once reachable from its node, so readers need no
// synchronisation beyond the acquire load that found it. The value bytes follow it.
struct Overlay::Version {
  uint64_t commit;
  const Version* older;  // the next older version, or nullptr
  size_t size;
  bool deleted;

  const char* data() const { return reinterpret_cast<const char*>(this + 1); }
};

// An entry of the skiplist. Laid out as the header, then `height` links (level 0 first),
// then the key bytes, in one arena allocation. The table and key never change; `newest`
// is replaced (release) by the writer when a commit writes the key again.
struct Overlay::Node {
  std::atomic<const Version*> newest;
  uint32_t table;
  uint32_t key_size;
  uint32_t height;

  // Where the links and the key bytes are, before and after they are constructed.
  char* tail() { return reinterpret_cast<char*>(this) + sizeof(Node); }
  const char* tail() const { return reinterpret_cast<const char*>(this) + sizeof(Node); }
  std::atomic<Node*>* links() {
    return std::launder(reinterpret_cast<std::atomic<Node*>*>(tail()));
  }
  const std::atomic<Node*>* links() const {
    return std::launder(reinterpret_cast<const std::atomic<Node*>*>(tail()));
  }
  Node* Next(int level) const { return links()[level].load(std::memory_order_acquire); }
  std::string_view key() const { return {tail() + height * sizeof(std::atomic<Node*>), key_size}; }

  // Constructs a node with its links (null) and key in the arena memory at p.
  static Node* Make(char* p, uint32_t table, std::string_view key, uint32_t height,
                    const Version* newest) {
    Node* n = new (p) Node{{newest}, table, uint32_t(key.size()), height};
    for (uint32_t i = 0; i < height; i++) {
      new (n->tail() + i * sizeof(std::atomic<Node*>)) std::atomic<Node*>(nullptr);
    }
    char* key_bytes = n->tail() + height * sizeof(std::atomic<Node*>);
    if (!key.empty()) std::memcpy(key_bytes, key.data(), key.size());
    return n;
  }
  static size_t SizeFor(size_t key_size, uint32_t height) {
    return sizeof(Node) + height * sizeof(std::atomic<Node*>) + key_size;
  }
};

// A position searched for: (table, key), or, if past_table, just after every key of table.
struct Overlay::Target {
  uint32_t table;
  std::string_view key;
  bool past_table = false;
};

namespace {

// Bytewise, a prefix first: LMDB's default order (memcmp, then length).
int CompareBytes(std::string_view a, std::string_view b) {
  size_t n = a.size() < b.size() ? a.size() : b.size();
  // memcmp's pointers must not be null even for a length of 0 (an empty string_view's
  // data() may be).
  int c = n == 0 ? 0 : std::memcmp(a.data(), b.data(), n);
  if (c != 0) return c;
  return a.size() < b.size() ? -1 : a.size() > b.size() ? 1 : 0;
}

}  // namespace

Overlay::Overlay() : rng_(0x2545f4914f6cdd1dull) {
  // The arena frees its blocks without running destructors, and aligns to 8 bytes.
  static_assert(std::is_trivially_destructible_v<Node> &&
                std::is_trivially_destructible_v<Version> &&
                std::is_trivially_destructible_v<std::atomic<Node*>>);
  static_assert(alignof(Node) <= 8 && alignof(Version) <= 8 && sizeof(Node) % 8 == 0 &&
                sizeof(Version) % 8 == 0 && sizeof(std::atomic<Node*>) == 8);
  head_ = Node::Make(Allocate(Node::SizeFor(0, kMaxHeight)), 0, {}, kMaxHeight, nullptr);
}

Overlay::~Overlay() = default;  // the blocks go; nothing in them has a destructor to run

// Geometric: reserve(size() + 1) would copy the whole list at every block.
void Overlay::ReserveBlockSlot() {
  if (blocks_.size() == blocks_.capacity()) blocks_.reserve(2 * blocks_.capacity() + 16);
}

char* Overlay::Allocate(size_t bytes) {
  bytes = (bytes + 7) & ~size_t(7);
  if (bytes > kLargeAllocation) {
    // Its own allocation: a large value would otherwise waste most of a block. Room for
    // the slot first, so that a failing push_back cannot leak the allocation.
    ReserveBlockSlot();
    blocks_.emplace_back(new char[bytes]);
    memory_bytes_.fetch_add(bytes, std::memory_order_relaxed);
    return blocks_.back().get();
  }
  if (bytes > block_left_) {
    ReserveBlockSlot();
    blocks_.emplace_back(new char[kBlockSize]);
    memory_bytes_.fetch_add(kBlockSize, std::memory_order_relaxed);
    block_free_ = blocks_.back().get();
    block_left_ = kBlockSize;
  }
  char* p = block_free_;
  block_free_ += bytes;
  block_left_ -= bytes;
  return p;
}

int Overlay::RandomHeight() {
  // xorshift64: the levels need only be independent of the keys, not unpredictable.
  // Each further level with probability 1/4 (two random bits), up to kMaxHeight.
  int height = 1;
  while (height < kMaxHeight) {
    rng_ ^= rng_ << 13;
    rng_ ^= rng_ >> 7;
    rng_ ^= rng_ << 17;
    if ((rng_ >> 32 & 3) != 0) break;
    height++;
  }
  return height;
}

int Overlay::Compare(const Node* n, const Target& t) {
  if (n->table != t.table) return n->table < t.table ? -1 : 1;
  if (t.past_table) return -1;
  return CompareBytes(n->key(), t.key);
}

Overlay::Node* Overlay::FindGreaterOrEqual(const Target& t, Node** prev) const {
  Node* x = head_;
  int level = height_.load(std::memory_order_relaxed) - 1;
  for (;;) {
    Node* next = x->Next(level);
    if (next != nullptr && Compare(next, t) < 0) {
      x = next;
    } else {
      if (prev != nullptr) prev[level] = x;
      if (level == 0) return next;
      level--;
    }
  }
}

const Overlay::Node* Overlay::FindLast(const Target& t, bool or_equal) const {
  const Node* x = head_;
  int level = height_.load(std::memory_order_relaxed) - 1;
  for (;;) {
    const Node* next = x->Next(level);
    int c = next == nullptr ? 1 : Compare(next, t);
    if (c < 0 || (or_equal && c == 0)) {
      x = next;
    } else {
      if (level == 0) return x;
      level--;
    }
  }
}

const Overlay::Version* Overlay::VersionAt(const Node* n, uint64_t at) {
  const Version* v = n->newest.load(std::memory_order_acquire);
  while (v != nullptr && v->commit > at) v = v->older;
  return v;
}

Overlay::Found Overlay::ToFound(const Version* v) {
  if (v == nullptr) return {};
  if (v->deleted) return {State::kDeleted, {}, v->commit};
  return {State::kValue, {v->data(), v->size}, v->commit};
}

const Overlay::Version* Overlay::NewVersion(std::string_view value, bool deleted, uint64_t commit,
                                            const Version* older) {
  char* p = Allocate(sizeof(Version) + value.size());
  if (!value.empty()) std::memcpy(p + sizeof(Version), value.data(), value.size());
  return new (p) Version{commit, older, value.size(), deleted};
}

bool Overlay::Put(uint32_t table, std::string_view key, std::string_view value, uint64_t commit) {
  return Write(table, key, value, false, commit);
}

bool Overlay::Delete(uint32_t table, std::string_view key, uint64_t commit) {
  return Write(table, key, {}, true, commit);
}

bool Overlay::Write(uint32_t table, std::string_view key, std::string_view value, bool deleted,
                    uint64_t commit) {
  if (commit == 0 || commit < last_commit_.load(std::memory_order_relaxed) ||
      key.size() > UINT32_MAX) {
    return false;
  }
  // Every allocation comes before the first change, so that bad_alloc leaves the overlay
  // as it was (Undo included). First room for the entry in touched_, so that a failing
  // push_back cannot leave a version Undo would not know of.
  const bool first_of_commit = commit != touched_commit_;
  const size_t touched = first_of_commit ? 0 : touched_.size();
  if (touched == touched_.capacity()) touched_.reserve(2 * touched_.capacity() + 16);
  auto begin_commit = [&] {
    if (!first_of_commit) return;
    touched_.clear();
    touched_commit_ = commit;
    before_touched_ = last_commit_.load(std::memory_order_relaxed);
  };
  Node* prev[kMaxHeight];
  Target t{table, key};
  Node* n = FindGreaterOrEqual(t, prev);
  if (n != nullptr && Compare(n, t) == 0) {
    const Version* newest = n->newest.load(std::memory_order_relaxed);
    const Version* older = newest != nullptr && newest->commit == commit ? newest->older : newest;
    const Version* v = NewVersion(value, deleted, commit, older);
    begin_commit();
    if (newest == nullptr || newest->commit != commit) touched_.push_back(n);
    // A second write to the key by the same commit replaces that commit's version: the
    // new one links past it to the older chain. A reader at an older commit sees either
    // version, both newer than what it reads at, and follows the same older chain; no
    // reader is at this commit yet (it is published only once the writer finished it).
    // The replaced version stays in the arena, unreachable to new readers.
    n->newest.store(v, std::memory_order_release);
  } else {
    int height = RandomHeight();
    char* p = Allocate(Node::SizeFor(key.size(), height));
    n = Node::Make(p, table, key, height, NewVersion(value, deleted, commit, nullptr));
    begin_commit();
    int old_height = height_.load(std::memory_order_relaxed);
    if (height > old_height) {
      for (int i = old_height; i < height; i++) prev[i] = head_;
      // Relaxed: a reader that sees the new height before the head's new links reads
      // nullptr there and goes down a level, as it would have with the old height.
      height_.store(height, std::memory_order_relaxed);
    }
    // Bottom up, each link made with release after the node's own links: a reader that
    // reaches the node through any level finds it complete and its lower levels linked.
    for (int i = 0; i < height; i++) {
      n->links()[i].store(prev[i]->links()[i].load(std::memory_order_relaxed),
                          std::memory_order_relaxed);
      prev[i]->links()[i].store(n, std::memory_order_release);
    }
    entries_.fetch_add(1, std::memory_order_relaxed);
    touched_.push_back(n);
  }
  last_commit_.store(commit, std::memory_order_relaxed);
  return true;
}

bool Overlay::Undo(uint64_t commit) {
  if (commit == 0 || commit != last_commit_.load(std::memory_order_relaxed) ||
      commit != touched_commit_) {
    return false;
  }
  for (Node* n : touched_) {
    const Version* newest = n->newest.load(std::memory_order_relaxed);
    // A reader at an older commit passed this version anyway; now it starts one later.
    if (newest != nullptr && newest->commit == commit) {
      n->newest.store(newest->older, std::memory_order_release);
    }
  }
  touched_.clear();
  last_commit_.store(before_touched_, std::memory_order_relaxed);
  return true;
}

Overlay::Found Overlay::Get(uint32_t table, std::string_view key, uint64_t at) const {
  Target t{table, key};
  const Node* n = FindGreaterOrEqual(t, nullptr);
  if (n == nullptr || Compare(n, t) != 0) return {};
  return ToFound(VersionAt(n, at));
}

void Overlay::Iterator::SettleForward(const Node* n) {
  // Skip keys with no version at at_ (inserted by later commits).
  for (; n != nullptr && n->table == table_; n = n->Next(0)) {
    if (const Version* v = VersionAt(n, at_); v != nullptr) {
      node_ = n;
      version_ = v;
      return;
    }
  }
  node_ = nullptr;
  version_ = nullptr;
}

void Overlay::Iterator::SettleBackward(const Node* n) {
  // There are no back links: each key skipped costs a search from the top.
  while (n != overlay_->head_ && n->table == table_) {
    if (const Version* v = VersionAt(n, at_); v != nullptr) {
      node_ = n;
      version_ = v;
      return;
    }
    n = overlay_->FindLast(Target{table_, n->key()}, false);
  }
  node_ = nullptr;
  version_ = nullptr;
}

void Overlay::Iterator::SeekToFirst() { Seek({}); }

void Overlay::Iterator::SeekToLast() {
  SettleBackward(overlay_->FindLast(Target{table_, {}, true}, false));
}

void Overlay::Iterator::Seek(std::string_view key) {
  SettleForward(overlay_->FindGreaterOrEqual(Target{table_, key}, nullptr));
}

void Overlay::Iterator::SeekForPrev(std::string_view key) {
  SettleBackward(overlay_->FindLast(Target{table_, key}, true));
}

void Overlay::Iterator::Next() { SettleForward(node_->Next(0)); }

void Overlay::Iterator::Prev() {
  SettleBackward(overlay_->FindLast(Target{table_, node_->key()}, false));
}

std::string_view Overlay::Iterator::key() const { return node_->key(); }

Overlay::Found Overlay::Iterator::found() const { return ToFound(version_); }

}  // namespace cairn::internal

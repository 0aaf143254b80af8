// The overlay: the effects of commits that are durable in the write-ahead log but not yet
// applied to LMDB by a checkpoint. Readers look here first: a key found with a value or a
// tombstone is answered from memory; a key absent here falls back to LMDB.
//
// It works at the key/value level, under the engine's record logic. Each entry is a (table,
// key) pair, where a table is an LMDB database handle, holding a chain of versions, newest
// first. Each version carries the commit number that wrote it and is either a value or a
// tombstone. A reader reads "at" a commit number C and sees, for each key, the newest
// version with commit <= C.
//
// Concurrency: one writer at a time (the engine serialises writers) and any number of
// readers that take no lock. Entries form a skiplist whose nodes are never moved or freed
// while the overlay lives; links and each entry's newest-version pointer are atomics stored
// with release and loaded with acquire, and a version is immutable once reachable. All
// memory comes from an arena freed at once when the overlay is destroyed, which the engine
// does only once no reader holds it (it shares the overlay through a std::shared_ptr).
//
// A reader must read at a commit the writer has finished (published): the writer may still
// be changing the versions of the commit it is writing (several writes to one key by one
// commit keep only the last), and a reader at that commit could see a half-written commit.
// Readers at older commits never see anything a later commit wrote.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string_view>
#include <vector>

namespace cairn::internal {

class Overlay {
 public:
  Overlay();
  ~Overlay();
  Overlay(const Overlay&) = delete;
  Overlay& operator=(const Overlay&) = delete;

  // Writer only. Precondition, checked: `commit` is > 0 and >= every commit written before
  // (one commit may write many keys), and the key is shorter than 4 GiB; otherwise these
  // return false and change nothing.
  // When one commit writes a key more than once, the last write wins. Throws only
  // std::bad_alloc, and then the overlay is as before the call.
  bool Put(uint32_t table, std::string_view key, std::string_view value, uint64_t commit);
  bool Delete(uint32_t table, std::string_view key, uint64_t commit);
  // Writer only: takes back every write of `commit`, the newest commit written, which no
  // reader may be reading at (it was never published): each key it wrote shows again
  // what it showed before, and the commit may be written anew. This is how a transaction
  // that fails after some of its writes leaves nothing behind. False (and nothing done)
  // if `commit` is not the newest commit written, or was taken back already. The keys it added stay as entries
  // without versions, which reads and iterators pass over; their memory stays in the
  // arena until the overlay goes.
  bool Undo(uint64_t commit);

  enum class State : uint8_t {
    kAbsent,   // no version at the commit read: the caller falls back to LMDB
    kValue,    // `value` holds the key's value
    kDeleted,  // a tombstone: the key is deleted, the caller must not fall back to LMDB
  };
  struct Found {
    State state = State::kAbsent;
    std::string_view value;  // valid while the overlay lives; empty unless kValue
    uint64_t commit = 0;     // the commit that wrote the version seen; 0 if kAbsent
  };
  // Any thread, at a published commit `at`.
  Found Get(uint32_t table, std::string_view key, uint64_t at) const;

 private:
  struct Node;
  struct Version;
  struct Target;

 public:
  // One table's keys that have a version at commit `at` (a value or a tombstone, so that a
  // merging caller can hide the LMDB record a tombstone deletes), in bytewise order (memcmp,
  // a prefix before the longer keys), like LMDB's default comparator. Safe while the writer
  // inserts: keys inserted after the iterator was made may or may not be seen, but those
  // have only versions newer than `at`, so at a published commit the answer is exact.
  // Initially not valid; the overlay must outlive the iterator.
  class Iterator {
   public:
    bool Valid() const { return node_ != nullptr; }
    void SeekToFirst();
    void SeekToLast();
    void Seek(std::string_view key);         // the first key >= key
    void SeekForPrev(std::string_view key);  // the last key <= key
    // Next and Prev need Valid(); they leave the iterator not valid past either end. Next
    // follows one link; Prev searches from the top of the skiplist, O(log n).
    void Next();
    void Prev();
    // key and found need Valid(). found's state is kValue or kDeleted, never kAbsent.
    std::string_view key() const;
    Found found() const;

   private:
    friend class Overlay;
    Iterator(const Overlay* overlay, uint32_t table, uint64_t at)
        : overlay_(overlay), table_(table), at_(at) {}
    // Move to the first (last) visible node of the table from `n` onwards (backwards).
    void SettleForward(const Node* n);
    void SettleBackward(const Node* n);

    const Overlay* overlay_;
    uint32_t table_;
    uint64_t at_;
    const Node* node_ = nullptr;
    const Version* version_ = nullptr;  // node_'s version at at_
  };
  Iterator NewIterator(uint32_t table, uint64_t at) const { return Iterator(this, table, at); }

  // Bytes the arena took from the system (blocks, in part unused, and large allocations):
  // what the engine bounds. These three may be read from any thread.
  size_t memory_bytes() const { return memory_bytes_.load(std::memory_order_relaxed); }
  // Distinct (table, key) pairs.
  size_t entries() const { return entries_.load(std::memory_order_relaxed); }
  // The newest commit written, 0 if none. Not a published commit: readers must not read at
  // it unless the writer has finished it.
  uint64_t last_commit() const { return last_commit_.load(std::memory_order_relaxed); }

 private:
  static constexpr int kMaxHeight = 12;
  static constexpr size_t kBlockSize = 64 * 1024;
  // Larger allocations get their own, so that a block wastes at most a quarter of itself.
  static constexpr size_t kLargeAllocation = kBlockSize / 4;

  bool Write(uint32_t table, std::string_view key, std::string_view value, bool deleted,
             uint64_t commit);
  // Arena memory, aligned for any of the overlay's structures (8 bytes). Writer only.
  char* Allocate(size_t bytes);
  void ReserveBlockSlot();
  int RandomHeight();
  const Version* NewVersion(std::string_view value, bool deleted, uint64_t commit,
                            const Version* older);

  // Searches. The first node >= t (nullptr if none), filling prev[level] with the last node
  // < t at each level if prev is given; the last node < t (or <= t), head_ if none.
  Node* FindGreaterOrEqual(const Target& t, Node** prev) const;
  const Node* FindLast(const Target& t, bool or_equal) const;
  static int Compare(const Node* n, const Target& t);
  // The newest version of n with commit <= at, or nullptr.
  static const Version* VersionAt(const Node* n, uint64_t at);
  static Found ToFound(const Version* v);

  // The entries `touched_commit_` wrote, each once: what Undo takes back. Writer only.
  std::vector<Node*> touched_;
  uint64_t touched_commit_ = 0;
  uint64_t before_touched_ = 0;  // last_commit_ before touched_commit_'s first write

  // The arena.
  std::vector<std::unique_ptr<char[]>> blocks_;
  char* block_free_ = nullptr;  // free space of the current block
  size_t block_left_ = 0;

  Node* head_;                  // a sentinel of kMaxHeight links that sorts before every entry
  std::atomic<int> height_{1};  // levels in use; read relaxed (a link seen is then acquired)
  uint64_t rng_;
  std::atomic<size_t> memory_bytes_{0};
  std::atomic<size_t> entries_{0};
  std::atomic<uint64_t> last_commit_{0};
};

}  // namespace cairn::internal

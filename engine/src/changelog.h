// Encoding of change-log entries (docs/storage.md, "Change log").
//
// An entry is the list of changes one commit made, built up as the transaction runs and
// stored under the commit number in the same LMDB transaction. Each entry carries an
// XXH3 checksum of its commit number and contents, since entries travel to replicas.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "cairn/engine/types.h"

namespace cairn::internal {

class LogEntryBuilder {
 public:
  void Clear() {
    body_.clear();
    count_ = 0;
  }
  bool empty() const { return count_ == 0; }
  size_t count() const { return count_; }

  void Put(std::string_view collection, std::string_view key, ValueKind kind,
           std::string_view value);
  void Delete(std::string_view collection, std::string_view key);
  void CreateCollection(std::string_view collection);
  void DropCollection(std::string_view collection);
  void CreateIndex(std::string_view collection, const IndexSpec& spec);
  void DropIndex(std::string_view collection, std::string_view index);

  // The stored form of the entry for commit `commit`, made at `time_ms`; with the
  // transaction's idempotency key and its remembered result (EncodeRemembered), or
  // empty ones. Valid until the next Finish or Clear (the buffer is reused).
  std::string_view Finish(uint64_t commit, uint64_t time_ms,
                          std::string_view idempotency_key = {},
                          std::string_view remembered = {});

 private:
  std::string body_;
  std::string entry_;  // Finish's output
  size_t count_ = 0;
};

// Decodes a stored entry; false if it is malformed or its checksum does not match.
bool DecodeLogEntry(uint64_t commit, std::string_view stored, LogEntry* out);

// The header of a stored entry: when it was made and its idempotency key and remembered
// result (empty if none, and in entries of format 1, which predate them). Views into
// `stored`. False if the entry is malformed or its checksum does not match.
struct LogHeader {
  uint64_t time_ms = 0;
  std::string_view idempotency_key, remembered;
};
bool DecodeLogHeader(uint64_t commit, std::string_view stored, LogHeader* out);

// A change of a stored entry, as views into it (Engine::ApplyLog applies entries without
// copying them). `index`: create index, the encoded spec (EncodeIndexSpec); drop index,
// the index's name.
struct ChangeView {
  Change::Kind kind = Change::kPut;
  std::string_view collection, key, value, index;
  ValueKind value_kind = ValueKind::kDocument;
};
// Decodes a stored entry's header and changes (appended to *changes); false if it is
// malformed or its checksum does not match.
bool DecodeLogChanges(uint64_t commit, std::string_view stored, LogHeader* header,
                      std::vector<ChangeView>* changes);

}  // namespace cairn::internal

// The catalog: collections and their indexes, as stored in the meta database and
// as cached in memory (an immutable snapshot shared by readers).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "cairn/engine/types.h"
#include "document.h"

namespace cairn::internal {

struct IndexDesc {
  uint32_t id = 0;  // prefix of its entries in the index database; never reused
  IndexSpec spec;
  std::vector<FieldPath> paths;  // spec.fields, split
  IndexState state = IndexState::kReady;
  std::string error;  // kFailed: why
  // kBuilding: records with keys <= cursor are indexed (empty: none yet).
  std::string cursor;
  bool cursor_set = false;

  // Whether writes maintain its entries (building and ready indexes).
  bool maintained() const { return state != IndexState::kFailed; }
};

struct CollectionDesc {
  uint32_t id = 0;  // prefix of its records in the records database; never reused
  std::string name;
  uint64_t created = 0;
  std::vector<IndexDesc> indexes;

  const IndexDesc* FindIndex(std::string_view name) const;
};

struct Catalog {
  std::map<std::string, CollectionDesc, std::less<>> collections;
  // Set while records written before format 3 may still lack a checksum: those whose key
  // in the records database is above it (empty: every record) have not been rewritten by
  // the background upgrade yet. Unset once every record carries one (meta kMetaUpgrade).
  std::optional<std::string> checksum_upgrade;

  const CollectionDesc* Find(std::string_view name) const;
  // Whether the record stored under `record_key` may be one without a checksum.
  bool MayLackChecksum(std::string_view record_key) const {
    return checksum_upgrade && record_key > *checksum_upgrade;
  }
};

// Meta database keys (docs/storage.md).
inline constexpr std::string_view kMetaMagic = "#magic";
inline constexpr std::string_view kMetaFormat = "#format";
inline constexpr std::string_view kMetaNextId = "#next_id";
inline constexpr std::string_view kMagicValue = "cairn";
// 2: idempotency keys in change-log entries (format 1 is upgraded at open).
// 3: every record carries a checksum (formats 1 and 2 are upgraded in place: at open, then
//    record by record in the background, see kMetaUpgrade).
inline constexpr uint32_t kFormatVersion = 3;
// Present while the upgrade to format 3 rewrites records: the key (in the records
// database) of the last record it has passed; empty before the first.
inline constexpr std::string_view kMetaUpgrade = "#checksum_upgrade";
// The database's history: the epochs of its primaries (docs/storage.md, "Replication").
inline constexpr std::string_view kMetaHistory = "#history";
// The highest epoch this node has heard of (u64 BE): above the history's last epoch, the
// node is fenced.
inline constexpr std::string_view kMetaFence = "#fence";
// The node that started the history's last epoch: the id in its folder's cairn.node file
// (docs/storage.md, "Copies start an epoch of their own").
inline constexpr std::string_view kMetaEpochOwner = "#epoch_owner";
// The file, beside data.mdb, that names the node the folder belongs to: not copied by
// snapshots and backups, so that a copy can tell it is one.
inline constexpr std::string_view kNodeFile = "cairn.node";

std::string CollectionMetaKey(std::string_view name);
std::string IndexMetaKey(uint32_t collection_id, std::string_view name);
std::string CleanupMetaKey(uint32_t id);
inline constexpr std::string_view kCollectionPrefix = "c/";
inline constexpr std::string_view kIndexPrefix = "i/";
inline constexpr std::string_view kCleanupPrefix = "d/";

std::string EncodeCollection(const CollectionDesc& c);
bool DecodeCollection(std::string_view name, std::string_view value, CollectionDesc* c);
std::string EncodeIndex(const IndexDesc& ix);
bool DecodeIndex(std::string_view name, std::string_view value, IndexDesc* ix);
std::string EncodeIndexSpec(const IndexSpec& spec);
bool DecodeIndexSpec(std::string_view value, IndexSpec* spec);

// What a cleanup entry asks the background thread to delete.
enum class CleanupKind : uint8_t { kRecords = 0, kIndexEntries = 1 };  // never renumber

// Names of collections and indexes: 1 to 128 characters from [A-Za-z0-9_.-].
Status CheckName(std::string_view what, std::string_view name);
// Index specs: a valid name, 1 to 16 fields, each a dotted path of non-empty parts.
Status CheckIndexSpec(const IndexSpec& spec);

}  // namespace cairn::internal

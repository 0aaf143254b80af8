#include "catalog_reply.h"

#include <string>

#include "convert.h"

namespace cairn::server {

namespace {

// Upper bounds on the parts of a FlatBuffer: a table with up to 4 fields (its vtable
// counted whole, although equal vtables are shared), a string (length, bytes, NUL,
// padding), a vector of offsets (length, entries, padding).
constexpr size_t kTable = 64;
constexpr size_t StringBytes(size_t n) { return n + 8; }
constexpr size_t VectorBytes(size_t n) { return 4 * n + 8; }

// The ResponseFrame and Collections tables, the collections vector's own bytes beyond
// what each entry counts, and `next` (a collection name: at most 128 bytes).
constexpr size_t kReplyOverhead = 2 * kTable + VectorBytes(0) + 128 + 8 + 64;

// The longest error a failed unique build records (background.cc): two keys and text.
constexpr size_t kLongestBuildError = 2 * kMaxKeySize + 128;

size_t Budget(uint32_t max_frame) {
  return max_frame > kReplyOverhead ? max_frame - kReplyOverhead : 0;
}

std::string Human(size_t bytes) { return std::to_string(bytes) + " bytes"; }

}  // namespace

size_t CollectionReplyBytes(const CollectionInfo& c, bool reserve_errors) {
  size_t n = 4 + kTable + StringBytes(c.name.size()) + VectorBytes(c.indexes.size());
  for (const IndexInfo& ix : c.indexes) {
    n += 2 * kTable + StringBytes(ix.spec.name.size()) + VectorBytes(ix.spec.fields.size());
    for (const std::string& f : ix.spec.fields) n += StringBytes(f.size());
    size_t error = ix.error.size();
    if (reserve_errors && ix.state == IndexState::kBuilding) error = kLongestBuildError;
    if (error) n += StringBytes(error);
  }
  return n;
}

Status BuildCollectionsPage(flatbuffers::FlatBufferBuilder& fbb, uint64_t id,
                            const std::vector<CollectionInfo>& all, std::string_view after,
                            bool paged, uint32_t max_frame) {
  const size_t budget = Budget(max_frame);
  std::vector<CollectionInfo> page;
  size_t bytes = 0;
  std::string next;
  for (const CollectionInfo& c : all) {  // in name order
    if (!after.empty() && c.name <= after) continue;
    size_t n = CollectionReplyBytes(c, /*reserve_errors=*/false);
    if (bytes + n > budget) {
      if (page.empty()) {
        return Status(Code::kTooLarge,
                      "collection '" + c.name + "' and its " + std::to_string(c.indexes.size()) +
                          " indexes take up to " + Human(n) + " to describe, more than fits in " +
                          "this server's frame limit of " + Human(max_frame) +
                          ": restart cairnd with a larger --max-frame, or drop indexes");
      }
      if (paged) {
        next = page.back().name;
        break;
      }
      size_t total = 0;
      for (const CollectionInfo& x : all) total += CollectionReplyBytes(x, false);
      return Status(Code::kTooLarge,
                    "the list of " + std::to_string(all.size()) + " collections takes up to " +
                        Human(total) + ", more than fits in this server's frame limit of " +
                        Human(max_frame) +
                        "; clients on protocol 3 get it in pages (ListCollections.after), or "
                        "restart cairnd with a larger --max-frame");
    }
    bytes += n;
    page.push_back(c);
  }
  BuildCollections(fbb, id, page, next);
  return Status::Ok();
}

Status BuildDescription(flatbuffers::FlatBufferBuilder& fbb, uint64_t id,
                        const CollectionInfo& c, uint32_t max_frame) {
  return BuildCollectionsPage(fbb, id, {c}, {}, /*paged=*/false, max_frame);
}

Status CheckIndexFits(const Engine& engine, std::string_view collection, const IndexSpec& spec,
                      uint32_t max_frame) {
  Result<CollectionInfo> info = engine.DescribeCollection(collection);
  if (!info.ok()) return Status::Ok();
  for (const IndexInfo& ix : info->indexes) {
    if (ix.spec.name == spec.name) return Status::Ok();
  }
  info->indexes.push_back(IndexInfo{spec, IndexState::kBuilding, {}});
  size_t n = CollectionReplyBytes(*info, /*reserve_errors=*/true);
  if (n > Budget(max_frame)) {
    return Status(Code::kTooLarge,
                  "collection '" + info->name + "' with this index (" +
                      std::to_string(info->indexes.size()) + " in all) could take up to " +
                      Human(n) + " to describe, more than fits in this server's frame limit of " +
                      Human(max_frame) +
                      ": drop an index, use fewer or shorter fields, or restart cairnd with a "
                      "larger --max-frame");
  }
  return Status::Ok();
}

}  // namespace cairn::server

#include "catalog.h"

#include "coding.h"

namespace cairn::internal {

const IndexDesc* CollectionDesc::FindIndex(std::string_view name) const {
  for (const IndexDesc& ix : indexes) {
    if (ix.spec.name == name) return &ix;
  }
  return nullptr;
}

const CollectionDesc* Catalog::Find(std::string_view name) const {
  auto it = collections.find(name);
  return it == collections.end() ? nullptr : &it->second;
}

std::string CollectionMetaKey(std::string_view name) {
  std::string k(kCollectionPrefix);
  k.append(name);
  return k;
}

std::string IndexMetaKey(uint32_t collection_id, std::string_view name) {
  std::string k(kIndexPrefix);
  PutU32BE(&k, collection_id);
  k.append(name);
  return k;
}

std::string CleanupMetaKey(uint32_t id) {
  std::string k(kCleanupPrefix);
  PutU32BE(&k, id);
  return k;
}

std::string EncodeCollection(const CollectionDesc& c) {
  std::string v;
  v.push_back(1);  // format of this record
  PutU32BE(&v, c.id);
  PutU64BE(&v, c.created);
  return v;
}

bool DecodeCollection(std::string_view name, std::string_view value, CollectionDesc* c) {
  ByteReader r(value);
  uint8_t format;
  if (!r.U8(&format) || format != 1 || !r.U32BE(&c->id) || !r.U64BE(&c->created)) return false;
  c->name.assign(name);
  return true;
}

std::string EncodeIndexSpec(const IndexSpec& spec) {
  std::string v;
  PutBytes(&v, spec.name);
  v.push_back(spec.unique ? 1 : 0);
  PutVarint(&v, spec.fields.size());
  for (const std::string& f : spec.fields) PutBytes(&v, f);
  return v;
}

namespace {
bool ReadIndexSpec(ByteReader& r, IndexSpec* spec) {
  uint8_t unique;
  uint64_t n;
  if (!r.Bytes(&spec->name) || !r.U8(&unique) || !r.Varint(&n) || n > 64) return false;
  spec->unique = unique != 0;
  spec->fields.resize(n);
  for (std::string& f : spec->fields) {
    if (!r.Bytes(&f)) return false;
  }
  return true;
}
}  // namespace

bool DecodeIndexSpec(std::string_view value, IndexSpec* spec) {
  ByteReader r(value);
  return ReadIndexSpec(r, spec) && r.empty();
}

std::string EncodeIndex(const IndexDesc& ix) {
  std::string v;
  v.push_back(1);  // format of this record
  PutU32BE(&v, ix.id);
  v.push_back(char(ix.state));
  v += EncodeIndexSpec(ix.spec);
  PutBytes(&v, ix.error);
  v.push_back(ix.cursor_set ? 1 : 0);
  PutBytes(&v, ix.cursor);
  return v;
}

bool DecodeIndex(std::string_view name, std::string_view value, IndexDesc* ix) {
  ByteReader r(value);
  uint8_t format, state, cursor_set;
  if (!r.U8(&format) || format != 1 || !r.U32BE(&ix->id) || !r.U8(&state) || state > 2 ||
      !ReadIndexSpec(r, &ix->spec) || !r.Bytes(&ix->error) || !r.U8(&cursor_set) ||
      !r.Bytes(&ix->cursor)) {
    return false;
  }
  if (ix->spec.name != name) return false;
  ix->state = IndexState(state);
  ix->cursor_set = cursor_set != 0;
  ix->paths.clear();
  for (const std::string& f : ix->spec.fields) ix->paths.push_back(ParsePath(f));
  return true;
}

Status CheckName(std::string_view what, std::string_view name) {
  if (name.empty() || name.size() > 128) {
    return Status(Code::kBadRequest, std::string(what) + " name must be 1 to 128 characters");
  }
  for (char ch : name) {
    bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '_' || ch == '-' || ch == '.';
    if (!ok) {
      return Status(Code::kBadRequest, std::string(what) + " name '" + std::string(name) +
                                           "' may only hold letters, digits, '_', '-' and '.'");
    }
  }
  return Status::Ok();
}

Status CheckIndexSpec(const IndexSpec& spec) {
  if (Status s = CheckName("index", spec.name); !s.ok()) return s;
  if (spec.fields.empty() || spec.fields.size() > 16) {
    return Status(Code::kBadRequest, "an index has 1 to 16 fields");
  }
  for (const std::string& f : spec.fields) {
    if (f.empty() || f.size() > 256) {
      return Status(Code::kBadRequest, "index field paths are 1 to 256 characters");
    }
    for (const std::string& part : ParsePath(f)) {
      if (part.empty() || part.find('\0') != std::string::npos) {
        return Status(Code::kBadRequest, "index field path '" + f + "' has an empty part");
      }
    }
  }
  return Status::Ok();
}

}  // namespace cairn::internal

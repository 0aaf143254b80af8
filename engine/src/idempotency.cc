#include "idempotency.h"

#include "coding.h"

namespace cairn::internal {

std::string EncodeRemembered(uint64_t time_ms, const TxnResult& r) {
  std::string out;
  PutU64BE(&out, time_ms);
  PutU64BE(&out, r.commit);
  PutVarint(&out, r.results.size());
  for (const OpResult& op : r.results) {
    out.push_back(op.found ? 1 : 0);
    PutVarint(&out, op.version);
    PutVarint(&out, op.count);
    PutBytes(&out, op.continuation);
    PutVarint(&out, op.records.size());
    for (const Record& rec : op.records) {
      PutBytes(&out, rec.key);
      PutVarint(&out, rec.version);
      out.push_back(char(rec.kind));
      PutBytes(&out, rec.value);
    }
  }
  return out;
}

bool DecodeRemembered(std::string_view stored, uint64_t* time_ms, TxnResult* r) {
  ByteReader in(stored);
  uint64_t n;
  if (!in.U64BE(time_ms) || !in.U64BE(&r->commit) || !in.Varint(&n) || n > stored.size()) {
    return false;
  }
  r->results.resize(n);
  for (OpResult& op : r->results) {
    uint8_t found;
    uint64_t records;
    if (!in.U8(&found) || !in.Varint(&op.version) || !in.Varint(&op.count) ||
        !in.Bytes(&op.continuation) || !in.Varint(&records) || records > stored.size()) {
      return false;
    }
    op.found = found != 0;
    op.records.resize(records);
    for (Record& rec : op.records) {
      uint8_t kind;
      if (!in.Bytes(&rec.key) || !in.Varint(&rec.version) || !in.U8(&kind) || kind > 1 ||
          !in.Bytes(&rec.value)) {
        return false;
      }
      rec.kind = ValueKind(kind);
    }
  }
  return in.empty();
}

std::string RetentionKey(uint64_t time_ms, std::string_view key) {
  std::string k;
  PutU64BE(&k, time_ms);
  k.append(key);
  return k;
}

}  // namespace cairn::internal

// The seed corpora of the fuzz harnesses: `cairn_fuzz_seeds OUT [SOURCE_DIR]` writes
// OUT/<harness>/<n> files. Seeds are derived from the inputs the tests use: every raw
// string literal R"(...)" in SOURCE_DIR/tests that parses as JSON (documents, values of
// index tests, the codec's own cases), the documents they make, the index values they
// hold, and valid frames of every request kind as the tests send them. Nothing here is
// committed output: the build folder holds it (scripts/fuzz.sh).
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "cairn/protocol/frame.h"
#include "cairn/protocol/json.h"
#include "cairn_generated.h"
#include "coding.h"
#include "flatbuffers/flexbuffers.h"
#include "key_codec.h"

namespace fs = std::filesystem;
using namespace cairn;

namespace {

class Corpus {
 public:
  Corpus(fs::path dir) : dir_(std::move(dir)) { fs::create_directories(dir_); }
  void Add(const std::string& bytes) {
    if (!seen_.insert(bytes).second) return;
    std::ofstream(dir_ / std::to_string(seen_.size()), std::ios::binary) << bytes;
  }
  size_t size() const { return seen_.size(); }

 private:
  fs::path dir_;
  std::set<std::string> seen_;
};

// Every R"( ... )" literal in the test sources.
std::vector<std::string> TestLiterals(const fs::path& tests) {
  std::vector<std::string> out;
  if (!fs::exists(tests)) return out;
  for (const auto& e : fs::recursive_directory_iterator(tests)) {
    if (!e.is_regular_file() || e.path().extension() != ".cc") continue;
    std::ifstream in(e.path(), std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    std::string src = ss.str();
    for (size_t at = src.find("R\"("); at != std::string::npos; at = src.find("R\"(", at)) {
      size_t end = src.find(")\"", at + 3);
      if (end == std::string::npos) break;
      out.push_back(src.substr(at + 3, end - at - 3));
      at = end + 2;
    }
  }
  return out;
}

std::string Bytes(const flatbuffers::FlatBufferBuilder& fbb) {
  return std::string(reinterpret_cast<const char*>(fbb.GetBufferPointer()), fbb.GetSize());
}

std::string Framed(const std::string& payload) {
  std::string out(4, '\0');
  wire::StoreFrameHeader(out.data(), uint32_t(payload.size()));
  return out + payload;
}

using Body = std::function<flatbuffers::Offset<void>(flatbuffers::FlatBufferBuilder&)>;

std::string Frame(wire::Request type, const Body& body) {
  static uint64_t id = 1;
  flatbuffers::FlatBufferBuilder fbb;
  auto b = body ? body(fbb) : flatbuffers::Offset<void>();
  fbb.Finish(wire::CreateRequestFrame(fbb, id++, type, b));
  return Framed(Bytes(fbb));
}

flatbuffers::Offset<flatbuffers::Vector<uint8_t>> Vec(flatbuffers::FlatBufferBuilder& fbb,
                                                      const std::string& s) {
  return fbb.CreateVector(reinterpret_cast<const uint8_t*>(s.data()), s.size());
}

std::string FlexOf(const std::function<void(flexbuffers::Builder&)>& f) {
  flexbuffers::Builder b;
  f(b);
  b.Finish();
  return std::string(reinterpret_cast<const char*>(b.GetBuffer().data()), b.GetSize());
}

void FrameSeeds(const std::vector<std::string>& docs, Corpus* c) {
  using namespace cairn::wire;
  std::string doc = docs.empty() ? FlexOf([](auto& b) { b.Map([&] { b.Int("a", 1); }); }) : docs[0];
  std::string equal = FlexOf([](auto& b) { b.Vector([&] { b.String("paris"); b.Int(3); }); });
  std::string value = FlexOf([](auto& b) { b.Int(7); });
  std::string token = "S" + std::string("\0\0\0\1k9", 6);
  std::vector<std::string> frames;
  frames.push_back(Frame(Request::Hello, [](auto& fbb) {
    return CreateHello(fbb, kProtocolVersion, fbb.CreateString("seeds")).Union();
  }));
  frames.push_back(Frame(Request::Ping, [](auto& fbb) {
    return CreatePing(fbb, Vec(fbb, "hi")).Union();
  }));
  frames.push_back(Frame(Request::Get, [](auto& fbb) {
    return CreateGet(fbb, fbb.CreateString("c"), Vec(fbb, "k1")).Union();
  }));
  // Transactions: each operation kind alone, and all together with conditions.
  auto ops = [&](flatbuffers::FlatBufferBuilder& fbb, int which) {
    std::vector<flatbuffers::Offset<wire::Operation>> v;
    auto add = [&](wire::Op type, flatbuffers::Offset<void> op) { v.push_back(CreateOperation(fbb, type, op)); };
    if (which < 0 || which == 0) add(wire::Op::Get, CreateGet(fbb, fbb.CreateString("c"), Vec(fbb, "k1")).Union());
    for (size_t i = 0; i < docs.size() && i < 8 && (which < 0 || which == 1); i++) {
      add(wire::Op::Put, CreatePut(fbb, fbb.CreateString("c"), Vec(fbb, "k" + std::to_string(i)),
                             Vec(fbb, docs[i]), wire::ValueKind::Document, wire::PutMode(i % 3)).Union());
    }
    if (which < 0 || which == 2) {
      add(wire::Op::Put, CreatePut(fbb, fbb.CreateString("raw"), Vec(fbb, "r"), Vec(fbb, "bytes"),
                             wire::ValueKind::Raw).Union());
      add(wire::Op::Delete, CreateDelete(fbb, fbb.CreateString("c"), Vec(fbb, "k2")).Union());
    }
    if (which < 0 || which == 3) {
      add(wire::Op::Scan, CreateScan(fbb, fbb.CreateString("c"), CreateKeyBound(fbb, Vec(fbb, "a")),
                               CreateKeyBound(fbb, Vec(fbb, "z"), false), 10, true,
                               Vec(fbb, token)).Union());
    }
    if (which < 0 || which == 4) {
      add(wire::Op::Query, CreateQuery(fbb, fbb.CreateString("c"), fbb.CreateString("by_city"),
                                 Vec(fbb, equal), CreateValueBound(fbb, Vec(fbb, value)),
                                 CreateValueBound(fbb, Vec(fbb, value), false), 5).Union());
    }
    if (which < 0 || which == 5) {
      add(wire::Op::Count, CreateCount(fbb, CreateScan(fbb, fbb.CreateString("c"))).Union());
      add(wire::Op::Count, CreateCount(fbb, 0, CreateQuery(fbb, fbb.CreateString("c"),
                                                     fbb.CreateString("by_v"))).Union());
    }
    return fbb.CreateVector(v);
  };
  for (int which = -1; which <= 5; which++) {
    frames.push_back(Frame(Request::Txn, [&](auto& fbb) {
      auto o = ops(fbb, which);
      std::vector<flatbuffers::Offset<wire::Condition>> conds;
      if (which < 0) {
        for (int k = 0; k < 3; k++) {
          conds.push_back(CreateCondition(fbb, wire::ConditionKind(k), fbb.CreateString("c"),
                                          Vec(fbb, "k1"), 7));
        }
      }
      auto cv = fbb.CreateVector(conds);
      auto key = which == 1 || which == 2 ? Vec(fbb, "0123456789abcdef")
                                          : flatbuffers::Offset<flatbuffers::Vector<uint8_t>>();
      return CreateTxn(fbb, cv, o, key, which == 1 ? 1 : 0, which == 1 ? 100 : 0).Union();
    }));
  }
  frames.push_back(Frame(Request::CreateCollection, [](auto& fbb) {
    return CreateCreateCollection(fbb, fbb.CreateString("users")).Union();
  }));
  frames.push_back(Frame(Request::DropCollection, [](auto& fbb) {
    return CreateDropCollection(fbb, fbb.CreateString("users")).Union();
  }));
  frames.push_back(Frame(Request::ListCollections, [](auto& fbb) {
    return CreateListCollections(fbb, fbb.CreateString("a")).Union();
  }));
  frames.push_back(Frame(Request::ListCollections, nullptr));
  frames.push_back(Frame(Request::DescribeCollection, [](auto& fbb) {
    return CreateDescribeCollection(fbb, fbb.CreateString("c")).Union();
  }));
  frames.push_back(Frame(Request::CreateIndex, [](auto& fbb) {
    std::vector<flatbuffers::Offset<flatbuffers::String>> f{fbb.CreateString("address.city"),
                                                            fbb.CreateString("age")};
    auto spec = CreateIndexSpec(fbb, fbb.CreateString("by_city"), fbb.CreateVector(f), true);
    return CreateCreateIndex(fbb, fbb.CreateString("c"), spec).Union();
  }));
  frames.push_back(Frame(Request::DropIndex, [](auto& fbb) {
    return CreateDropIndex(fbb, fbb.CreateString("c"), fbb.CreateString("by_city")).Union();
  }));
  frames.push_back(Frame(Request::GetStats, nullptr));
  frames.push_back(Frame(Request::VerifyDatabase, nullptr));
  frames.push_back(Frame(Request::Snapshot, nullptr));
  frames.push_back(Frame(Request::Watch, [](auto& fbb) {
    return CreateWatch(fbb, fbb.CreateString("c"), Vec(fbb, "k"), 3).Union();
  }));
  frames.push_back(Frame(Request::Digest, [](auto& fbb) { return CreateDigest(fbb, 5, 100).Union(); }));
  for (const std::string& f : frames) c->Add(f);
  // A connection's worth: Hello, then everything, with an empty frame in between.
  std::string stream;
  for (const std::string& f : frames) stream += f;
  c->Add(frames[0] + std::string(4, '\0') + frames[3]);
  c->Add(stream);
}

void KeySeeds(const std::vector<std::string>& docs, Corpus* c) {
  // FuzzedDataProvider reads its choices from the end of the input and strings from the
  // front: seeds are short runs of mixed bytes, and the encodings of the tests' values.
  c->Add(std::string(24, '\0'));
  c->Add(std::string(24, '\xff'));
  c->Add("\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d\x0e\x0f\x10");
  for (const std::string& doc : docs) {
    auto root = flexbuffers::GetRoot(reinterpret_cast<const uint8_t*>(doc.data()), doc.size());
    auto m = root.AsMap();
    auto values = m.Values();
    std::string keys;
    for (size_t i = 0; i < values.size(); i++) internal::AppendFlexValue(values[i], &keys);
    if (!keys.empty()) c->Add(keys);
  }
}

void TokenSeeds(Corpus* c) {
  c->Add(std::string(32, '\0'));
  c->Add(std::string(32, '\x01'));
  using namespace std::string_literals;
  c->Add("S\0\0\0\1k05xxxxxxxxxxxxxxxxxxxxxxxxxxx"s);
  c->Add("Q\0\0\0\2\x10\0\0\0\2\x40" "a\0\x01k03yyyyyyyyyyyyyyyyyyyyyyy"s);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::cerr << "usage: cairn_fuzz_seeds OUT [SOURCE_DIR]\n";
    return 2;
  }
  fs::path out = argv[1];
  fs::path src = argc > 2 ? fs::path(argv[2]) : fs::path(CAIRN_SOURCE_DIR);
  Corpus json(out / "json_fuzz"), document(out / "document_fuzz"), frame(out / "frame_fuzz"),
      keycodec(out / "keycodec_fuzz"), token(out / "token_fuzz");

  std::vector<std::string> docs;
  for (const std::string& lit : TestLiterals(src / "tests")) {
    std::string flex, error;
    if (!JsonToFlex(lit, &flex, &error)) continue;
    json.Add(lit);
    document.Add(flex);  // a value that is not a map too: the checker refuses it
    auto root = flexbuffers::GetRoot(reinterpret_cast<const uint8_t*>(flex.data()), flex.size());
    if (root.IsMap()) docs.push_back(flex);
  }
  // The JSON codec's tags and escapes, in case the tests' spelling changes.
  for (const char* j : {R"({"$bytes": "AAEC"})", R"({"s": {"$string": "/w=="}})",
                        R"({"m": {"$map": [[{"$string": "/w=="}, 1], ["$bytes", 2]]}})",
                        R"({"u": "\u00e9\ud83d\ude00", "e": 1e308, "n": -0.0, "i": 18446744073709551615})",
                        R"([1, 2.5, "x", null, true, false, {}, []])"}) {
    json.Add(j);
    std::string flex, error;
    if (JsonToFlex(j, &flex, &error)) document.Add(flex);
  }
  // Documents with shared parts (a builder pools keys and strings).
  document.Add(FlexOf([](flexbuffers::Builder& b) {
    b.Map([&] {
      b.Vector("list", [&] {
        for (int i = 0; i < 8; i++) b.String("same");
      });
      b.Map("nested", [&] { b.Blob("blob", "\0\1", 2); b.Double("d", 0.5); });
    });
  }));
  FrameSeeds(docs, &frame);
  KeySeeds(docs, &keycodec);
  TokenSeeds(&token);
  std::cout << "seeds: json " << json.size() << ", document " << document.size() << ", frame "
            << frame.size() << ", keycodec " << keycodec.size() << ", token " << token.size()
            << " in " << out << "\n";
  return 0;
}

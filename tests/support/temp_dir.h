// Helpers shared by every test: temporary folders and documents from JSON.
// (Engine shorthands are in test_util.h; this header does not include the engine,
// so that client tests can use it.)
#pragma once

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <memory>
#include <string>

#include "cairn/protocol/json.h"

namespace cairn::testing {

// A fresh folder under $TMPDIR, removed with everything in it when this goes.
class TempDir {
 public:
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "cairn-test-XXXXXX").string();
    char* p = mkdtemp(tmpl.data());
    if (!p) throw std::runtime_error("mkdtemp failed");
    path_ = p;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }
  std::string Sub(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// A document from JSON; fails the test on bad JSON.
inline std::string Doc(std::string_view json) {
  std::string doc, error;
  EXPECT_TRUE(JsonToDocument(json, &doc, &error)) << error << " in " << json;
  return doc;
}

inline std::string Json(std::string_view doc) { return FlexToJson(doc); }

}  // namespace cairn::testing

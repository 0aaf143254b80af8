// Backup files for tests: made with the real BackupWriter from bytes in memory, then
// damaged on purpose; and small file and folder helpers to see what a restore left.
#pragma once

#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <fstream>
#include <iterator>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "cairn/protocol/backup.h"

namespace cairn::testing {

inline std::string ReadBytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

inline void WriteBytes(const std::string& path, std::string_view bytes) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(bytes.data(), std::streamsize(bytes.size()));
  ASSERT_TRUE(f.good()) << path;
}

inline std::string RandomBytes(size_t n, uint32_t seed) {
  std::mt19937_64 rng(seed);
  std::string out(n, '\0');
  for (char& c : out) c = char(rng());
  return out;
}

// The names in a folder ("." and ".." left out); empty if it does not exist.
inline std::set<std::string> Entries(const std::string& dir) {
  std::set<std::string> out;
  if (DIR* d = ::opendir(dir.c_str())) {
    while (dirent* e = ::readdir(d)) {
      std::string name = e->d_name;
      if (name != "." && name != "..") out.insert(name);
    }
    ::closedir(d);
  }
  return out;
}

inline bool Exists(const std::string& path) { return ::access(path.c_str(), F_OK) == 0; }

// A backup of `data` in chunks of `chunk` bytes (the last one shorter), written to `path`
// with BackupWriter as a snapshot stream would feed it.
inline void MakeBackup(const std::string& path, std::string_view data, size_t chunk = 1000,
                       uint64_t commit = 42, std::vector<BackupEpoch> history = {{1, 7, 1}, {2, 9, 30}},
                       uint32_t snapshot_format = kSnapshotFormatLmdb) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  ASSERT_GE(fd, 0) << path;
  BackupWriter w(fd, path);
  ASSERT_TRUE(w.Begin(commit, snapshot_format, history).ok());
  BackupDataChecksum all;
  for (size_t at = 0; at < data.size(); at += chunk) {
    std::string_view piece = data.substr(at, chunk);
    all.Update(piece);
    BackupStatus s = w.Chunk(at, piece, BackupChunkChecksum(at, piece));
    ASSERT_TRUE(s.ok()) << s.message();
  }
  BackupStatus s = w.End(data.size(), all.Digest());
  ASSERT_TRUE(s.ok()) << s.message();
  ::close(fd);
}

// Where things are in a backup made by MakeBackup with equal chunks (docs/storage.md,
// "The backup file").
struct BackupLayout {
  size_t epochs = 2, chunk = 1000, size = 0;
  size_t header() const { return kBackupHeaderFixedSize + epochs * kBackupEpochSize + 8; }
  size_t chunks() const { return (size + chunk - 1) / chunk; }
  // The first byte of chunk i's header, and of its data.
  size_t chunk_at(size_t i) const { return header() + i * (kBackupChunkHeaderSize + chunk); }
  size_t data_at(size_t i) const { return chunk_at(i) + kBackupChunkHeaderSize; }
  size_t trailer() const { return header() + chunks() * kBackupChunkHeaderSize + size; }
  size_t file() const { return trailer() + kBackupTrailerSize; }
};

}  // namespace cairn::testing

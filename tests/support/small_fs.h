// A small filesystem for tests of a full disk: a tmpfs of a given size, mounted on a
// fresh folder of its own (so tests running in parallel never share one) and unmounted
// when this goes. Mounting needs CAP_SYS_ADMIN: where it is refused, `mounted()` is false
// and `why()` says why, for GTEST_SKIP.
#pragma once

#include <sys/mount.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>

namespace cairn::testing {

class SmallFs {
 public:
  // `size` as mount(8) takes it: "8m".
  explicit SmallFs(const std::string& size) {
    std::string tmpl = (std::filesystem::temp_directory_path() / "cairn-fs-XXXXXX").string();
    if (!mkdtemp(tmpl.data())) {
      why_ = std::string("mkdtemp: ") + std::strerror(errno);
      return;
    }
    path_ = tmpl;
    std::string options = "size=" + size + ",mode=0700";
    if (::mount("tmpfs", path_.c_str(), "tmpfs", MS_NOSUID | MS_NODEV, options.c_str()) != 0) {
      why_ = std::string("mount -t tmpfs: ") + std::strerror(errno);
      return;
    }
    mounted_ = true;
  }
  ~SmallFs() {
    if (mounted_) ::umount2(path_.c_str(), MNT_DETACH);
    if (!path_.empty()) ::rmdir(path_.c_str());
  }
  SmallFs(const SmallFs&) = delete;
  SmallFs& operator=(const SmallFs&) = delete;

  bool mounted() const { return mounted_; }
  const std::string& why() const { return why_; }
  const std::string& path() const { return path_; }
  std::string Sub(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
  std::string why_;
  bool mounted_ = false;
};

// Fills the filesystem holding `path` (a new file) until it refuses a single byte; returns
// the bytes written. Leaves the file in place: remove it to free the space again.
inline uint64_t FillDisk(const std::string& path) {
  FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) return 0;
  std::setvbuf(f, nullptr, _IONBF, 0);
  std::string chunk(64 << 10, 'f');
  uint64_t written = 0;
  for (size_t size = chunk.size(); size > 0; size /= 2) {
    while (std::fwrite(chunk.data(), 1, size, f) == size) written += size;
    std::clearerr(f);
  }
  std::fclose(f);
  return written;
}

}  // namespace cairn::testing

#define SKIP_UNLESS_MOUNTED(fs)                                     \
  if (!(fs).mounted())                                              \
  GTEST_SKIP() << "cannot mount a small tmpfs here (" << (fs).why() \
               << "): the full-disk test needs root or CAP_SYS_ADMIN; it did not run"

#include "restore.h"

#include <algorithm>
#include <cstdio>

#include "cairn/engine/engine.h"
#include "cairn/protocol/backup.h"

namespace cairn::server {

namespace {

// The check RestoreBackup runs on the restored data before it becomes DIR: LMDB and
// cairn's engine must open it read-only (its meta pages, its size, cairn's catalog and
// format), and it must hold exactly the commits the header says.
BackupStatus CheckRestored(const ServerOptions& opts, const std::string& folder,
                           const BackupInfo& info) {
  Options options = opts.engine;
  options.read_only = true;
  options.replica = false;
  // The map only has to cover the file (address space; a read-only open writes nothing).
  options.max_size = std::max<uint64_t>(options.max_size, info.size);
  auto engine = Engine::Open(folder, options);
  if (!engine.ok()) {
    return BackupStatus(BackupErrorKind::kCheck, "the restored database does not open: " +
                                                     engine.status().ToString());
  }
  uint64_t last = (*engine)->LastCommit();
  if (last != info.commit) {
    return BackupStatus(BackupErrorKind::kCheck,
                        "the restored database's last commit is " + std::to_string(last) +
                            ", but the backup's header says " + std::to_string(info.commit) +
                            ": the snapshot is not the one the header describes");
  }
  // The history the header announced is the one stored with the data.
  std::vector<EpochStart> stored = (*engine)->History();
  bool same = stored.size() == info.history.size();
  for (size_t i = 0; same && i < stored.size(); i++) {
    same = stored[i].epoch == info.history[i].epoch && stored[i].id == info.history[i].id &&
           stored[i].first_commit == info.history[i].first_commit;
  }
  if (!same) {
    return BackupStatus(BackupErrorKind::kCheck,
                        "the restored database's epoch history is not the one the backup's "
                        "header describes: the snapshot is not the one the header describes");
  }
  return {};
}

}  // namespace

int RestoreOffline(const ServerOptions& opts, const std::string& file) {
  RestoreOptions options;
  options.check = [&](const std::string& folder, const BackupInfo& info) {
    return CheckRestored(opts, folder, info);
  };
  auto r = RestoreBackup(file, opts.data_dir, options);
  const std::string from = file == "-" ? "standard input" : file;
  if (!r.ok()) {
    std::fprintf(stderr, "cairnd: cannot restore %s into %s: %s\n", from.c_str(),
                 opts.data_dir.c_str(), r.status().message().c_str());
    return 1;
  }
  const BackupInfo& b = r->backup;
  double mb = double(b.size) / 1e6;
  std::printf("cairnd --restore %s\n", from.c_str());
  std::printf("restored commit %llu (epoch %llu) into %s: %.1f MB in %llu chunks, %.2f s, "
              "%.0f MB/s\n",
              (unsigned long long)b.commit,
              (unsigned long long)(b.history.empty() ? 0 : b.history.back().epoch),
              r->data_file.c_str(), mb, (unsigned long long)b.chunks, r->seconds,
              r->seconds > 0 ? mb / r->seconds : 0.0);
  return 0;
}

}  // namespace cairn::server

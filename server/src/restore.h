// cairnd --restore FILE --data DIR: a backup (docs/storage.md, "Backups") made the
// database in DIR, checked on the way (RestoreBackup) and, before it is put in place,
// opened with the Engine: its last commit must be the one the backup's header names.
#pragma once

#include <string>

#include "options.h"

namespace cairn::server {

// Restores `file` ("-": standard input) into opts.data_dir, prints what was restored on
// stdout, or the error on stderr. Returns the exit status: 0 restored, 1 refused or failed
// (DIR then is as it was).
int RestoreOffline(const ServerOptions& opts, const std::string& file);

}  // namespace cairn::server

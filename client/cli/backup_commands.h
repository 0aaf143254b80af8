// `cairn verify-backup FILE` and `cairn restore FILE --data DIR`: the backup file
// (docs/storage.md, "Backups") checked or restored here, offline, without a server.
// Kept apart from main.cc's commands, which all talk to cairnd.
#pragma once

#include <CLI/CLI.hpp>
#include <optional>
#include <string>

namespace cairn::cli {

// The exit codes these commands use, from the CLI's list (main.cc, kExitCodes).
enum BackupExit : int {
  kBackupOk = 0,
  kBackupUsage = 2,    // bad arguments; DIR exists and is not an empty folder
  kBackupIo = 3,       // FILE cannot be read, or DIR cannot be written
  kBackupDamaged = 6,  // FILE is damaged, truncated, not a cairn backup, or of a newer format
};

struct BackupCommands {
  CLI::App* verify = nullptr;
  CLI::App* restore = nullptr;
  std::string file, data;
};

// Adds the two subcommands to `app`.
void AddBackupCommands(CLI::App& app, BackupCommands* commands);

// Runs the subcommand chosen, if it is one of these (after app.parse): its exit code.
std::optional<int> RunBackupCommands(const BackupCommands& commands);

}  // namespace cairn::cli

#include "backup_commands.h"

#include <cstdio>

#include "cairn/protocol/backup.h"
#include "cairn/protocol/json.h"

namespace cairn::cli {

namespace {

std::string Text(std::string_view s) {
  std::string out;
  AppendJsonText(s, &out);
  return out;
}

std::string Num(uint64_t v) { return std::to_string(v); }

// The JSON fields that say what a backup holds.
std::string InfoFields(const BackupInfo& b) {
  std::string history;
  for (const BackupEpoch& e : b.history) {
    history += (history.empty() ? "" : ",") + std::string("{\"epoch\":") + Num(e.epoch) +
               ",\"id\":" + Num(e.id) + ",\"first_commit\":" + Num(e.first_commit) + "}";
  }
  return "\"format\":" + Num(b.format_version) + ",\"snapshot_format\":" + Num(b.snapshot_format) +
         ",\"commit\":" + Num(b.commit) + ",\"size\":" + Num(b.size) + ",\"chunks\":" +
         Num(b.chunks) + ",\"epoch\":" + Num(b.history.empty() ? 0 : b.history.back().epoch) +
         ",\"history\":[" + history + "]";
}

// The message on stderr, and the exit code, for a backup that failed.
int Refused(const std::string& context, const BackupStatus& s) {
  std::string message = s.message();
  // Messages about the file's content ("chunk 12 at offset ...") or its reading say which
  // file it is here; the others name what they are about already (a path, the folder).
  bool about_file = s.kind() == BackupErrorKind::kNotBackup ||
                    s.kind() == BackupErrorKind::kTooNew ||
                    s.kind() == BackupErrorKind::kDamaged ||
                    message.rfind("cannot read the backup", 0) == 0;
  if (about_file) message = context + ": " + message;
  std::fprintf(stderr, "cairn: %s\n", PrintableText(message).c_str());
  switch (s.kind()) {
    case BackupErrorKind::kNotBackup:
    case BackupErrorKind::kTooNew:
    case BackupErrorKind::kDamaged: return kBackupDamaged;
    case BackupErrorKind::kTarget: return kBackupUsage;
    default: return kBackupIo;
  }
}

std::string FileName(const std::string& file) { return file == "-" ? "standard input" : file; }

int VerifyBackup(const std::string& file) {
  auto r = ReadBackup(file);
  if (!r.ok()) return Refused(FileName(file), r.status());
  std::printf("{\"ok\":true,\"file\":%s,%s}\n", Text(FileName(file)).c_str(), InfoFields(*r).c_str());
  return kBackupOk;
}

int Restore(const std::string& file, const std::string& dir) {
  auto r = RestoreBackup(file, dir);
  if (!r.ok()) return Refused(FileName(file), r.status());
  double mb = double(r->backup.size) / 1e6;
  char speed[64];
  std::snprintf(speed, sizeof speed, "\"seconds\":%.3f,\"mb_per_s\":%.1f", r->seconds,
                r->seconds > 0 ? mb / r->seconds : 0.0);
  std::printf("{\"restored\":true,\"file\":%s,\"data\":%s,%s,%s}\n", Text(FileName(file)).c_str(),
              Text(dir).c_str(), InfoFields(r->backup).c_str(), speed);
  return kBackupOk;
}

}  // namespace

void AddBackupCommands(CLI::App& app, BackupCommands* c) {
  c->verify = app.add_subcommand(
      "verify-backup",
      "Check a backup file without restoring it (every checksum, its size, its end); prints "
      "its commit, size, chunks and epoch. Exits 6 if it is damaged or not a backup. No server");
  c->verify->add_option("FILE", c->file, "The backup; - reads standard input")->required();
  c->restore = app.add_subcommand(
      "restore",
      "Restore a backup file into DIR, a new or empty folder (never half-restored: a damaged "
      "backup leaves DIR as it was). No server. Unlike cairnd --restore, it does not open the "
      "database to check its last commit (this program does not link LMDB)");
  c->restore->add_option("FILE", c->file, "The backup; - reads standard input")->required();
  c->restore->add_option("--data", c->data, "The folder to restore into (created if missing)")
      ->required();
}

std::optional<int> RunBackupCommands(const BackupCommands& c) {
  if (c.verify && *c.verify) return VerifyBackup(c.file);
  if (c.restore && *c.restore) return Restore(c.file, c.data);
  return std::nullopt;
}

}  // namespace cairn::cli

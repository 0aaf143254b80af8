// The verifier in a process of its own. Engine::Verify reads every page of the data file
// through LMDB's map, and on a structurally damaged file (a zeroed page, a flipped page
// number) LMDB aborts on an assertion or the read dies of SIGBUS. Run in a child process,
// such a death becomes a report ("structurally damaged ...; restore from a backup")
// instead of taking down cairnd, or, offline, the operator's command.
//
// The child is cairnd itself (/proc/self/exe), started with posix_spawn (never fork() of
// a multi-threaded server) as `cairnd --verify-child --data DIR`: it opens the database
// read-only, which needs no lock a running server holds, runs Engine::Verify and writes
// the report on its stdout in the format below. Used by `cairnd --verify` (offline) and by
// the Checker, for VerifyDatabase requests (online): one verifier, one report.
//
// The report format (version 1; docs/storage.md, "Checking a database"): lines of text,
//   cairn-verify 1
//   part <name>                  as the check begins each part (open, catalog, records...)
//   problem <text>               one per problem; '\' and newline escaped as \\ and \n
//   counts <records> <index entries> <log entries>
//   end
// A report is complete only with its `end` line and a clean exit of the child; anything
// else (a signal, another exit, no `end`) is structural damage, reported with the part the
// child had begun and what it printed on stderr (an LMDB assertion names itself there).
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

#include "cairn/engine/engine.h"

namespace cairn::server {

inline constexpr int kVerifyReportVersion = 1;

struct VerifierOptions {
  std::string exe = "/proc/self/exe";  // the cairnd binary to start as the child
  std::string data_dir;
  uint64_t max_size = uint64_t{64} << 30;  // map size for the child's read-only open
  // After this long the child is killed (SIGKILL) and the report says the check did not
  // finish: a damaged file can also make a B+tree walk go round in circles.
  std::chrono::milliseconds timeout{std::chrono::minutes(10)};
  // If >= 0: readable (a byte written, or the write end closed) means stop now. The
  // child is killed and the report says the check was cancelled.
  int cancel_fd = -1;
};

struct VerifyOutcome {
  enum class End : uint8_t {
    kCompleted,   // the child finished: `report` is its report (which may list problems)
    kDamaged,     // the child died or stopped short: structural damage (or cannot open)
    kTimedOut,    // killed at the deadline
    kCancelled,   // killed on request (cancel_fd)
    kNotStarted,  // posix_spawn or pipe failed
  };
  End end = End::kNotStarted;
  VerifyReport report;       // always holds a problem unless end == kCompleted
  std::string child_stderr;  // what the child printed there (bounded)

  bool finished() const { return end == End::kCompleted; }
};

// Starts the child, waits for it (bounded by options.timeout), always reaps it. Blocks the
// calling thread; thread-safe (each call has its own child and pipes).
VerifyOutcome RunVerifier(const VerifierOptions& options);

// The child's side: opens `data_dir` read-only, verifies, writes the report to `out_fd`.
// Returns the process exit code (0 when the report was written, whatever it says).
int VerifierChildMain(const std::string& data_dir, uint64_t max_size, int out_fd);

// The report format's two halves, for the child and the parent (and for tests).
// AppendProblemLine escapes `text`; ParseReport fills `report` from a whole report and
// tells whether it was complete (header of a known version ... end). `last_part` gets the
// last part begun, even from a report cut short.
void AppendLine(std::string* out, std::string_view tag, std::string_view text);
bool ParseReport(std::string_view text, VerifyReport* report, std::string* last_part);

}  // namespace cairn::server

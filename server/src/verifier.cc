#include "verifier.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <thread>
#include <vector>

extern char** environ;

namespace cairn::server {

namespace {

constexpr size_t kMaxReportBytes = size_t{4} << 20;  // 200 problems fit many times over
constexpr size_t kMaxStderrBytes = 4096;

bool WriteAll(int fd, std::string_view bytes) {
  while (!bytes.empty()) {
    ssize_t n = ::write(fd, bytes.data(), bytes.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    bytes.remove_prefix(size_t(n));
  }
  return true;
}

std::string Unescape(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); i++) {
    if (s[i] == '\\' && i + 1 < s.size()) {
      char c = s[++i];
      out += c == 'n' ? '\n' : c;
    } else {
      out += s[i];
    }
  }
  return out;
}

// "died of SIGBUS", "exited with status 1".
std::string HowItEnded(int status) {
  if (WIFSIGNALED(status)) {
    const char* name = sigabbrev_np(WTERMSIG(status));
    return "died of " +
           (name ? "SIG" + std::string(name) : "signal " + std::to_string(WTERMSIG(status)));
  }
  if (WIFEXITED(status) && WEXITSTATUS(status) != 0) {
    return "exited with status " + std::to_string(WEXITSTATUS(status));
  }
  return "stopped before the end of its report";
}

std::string WhileDoing(const std::string& part) {
  if (part.empty()) return " before it began";
  if (part == "open") return " while opening the database";
  return " while checking the " + part;
}

// The child's stderr on one line, for a report.
std::string OneLine(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  for (char& c : s) {
    if (c == '\n') c = ' ';
  }
  if (s.size() > 300) s = s.substr(0, 300) + "...";
  return s;
}

}  // namespace

void AppendLine(std::string* out, std::string_view tag, std::string_view text) {
  *out += tag;
  if (!text.empty()) *out += ' ';
  for (char c : text) {
    if (c == '\\')
      *out += "\\\\";
    else if (c == '\n')
      *out += "\\n";
    else
      *out += c;
  }
  *out += '\n';
}

bool ParseReport(std::string_view text, VerifyReport* report, std::string* last_part) {
  bool header = false, end = false;
  while (!text.empty()) {
    size_t nl = text.find('\n');
    if (nl == std::string_view::npos) break;  // a line cut short is not a line
    std::string_view line = text.substr(0, nl);
    text.remove_prefix(nl + 1);
    size_t sp = line.find(' ');
    std::string_view tag = line.substr(0, sp);
    std::string_view rest = sp == std::string_view::npos ? "" : line.substr(sp + 1);
    if (!header) {
      if (tag != "cairn-verify" || rest != std::to_string(kVerifyReportVersion)) return false;
      header = true;
    } else if (tag == "part") {
      *last_part = Unescape(rest);
    } else if (tag == "problem") {
      report->problems.push_back(Unescape(rest));
    } else if (tag == "counts") {
      unsigned long long r = 0, i = 0, l = 0;
      if (std::sscanf(std::string(rest).c_str(), "%llu %llu %llu", &r, &i, &l) == 3) {
        report->records = r;
        report->index_entries = i;
        report->log_entries = l;
      }
    } else if (tag == "end") {
      end = true;
      break;
    }
    // Other tags are for later versions of the format to add; this one skips them.
  }
  return header && end;
}

int VerifierChildMain(const std::string& data_dir, uint64_t max_size, int out_fd) {
  // A check outlives no parent: killed with it (or gone at once if it is gone already).
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (::getppid() == 1) return 1;
  // Each line leaves as soon as it is made, so that if this process dies the parent knows
  // how far it got.
  bool ok = true;
  auto emit = [&](std::string_view tag, std::string_view text) {
    std::string line;
    AppendLine(&line, tag, text);
    ok = WriteAll(out_fd, line) && ok;
  };
  emit("cairn-verify", std::to_string(kVerifyReportVersion));
  emit("part", "open");
  Options options;
  options.read_only = true;
  options.max_size = max_size;
  VerifyReport report;
  auto engine = Engine::Open(data_dir, options);
  if (!engine.ok()) {
    report.problems.push_back("cannot open the database: " + engine.status().ToString());
  } else {
    report = (*engine)->Verify([&](std::string_view part) { emit("part", part); });
  }
  for (const std::string& p : report.problems) emit("problem", p);
  emit("counts", std::to_string(report.records) + " " + std::to_string(report.index_entries) + " " +
                     std::to_string(report.log_entries));
  emit("end", "");
  return ok ? 0 : 1;
}

VerifyOutcome RunVerifier(const VerifierOptions& options) {
  VerifyOutcome outcome;
  auto not_started = [&](const std::string& what) {
    outcome.end = VerifyOutcome::End::kNotStarted;
    outcome.report.problems.push_back("not checked: cannot start the verifier (" + what + ": " +
                                      std::strerror(errno) + ")");
    return outcome;
  };
  int out[2], err[2];
  if (::pipe2(out, O_CLOEXEC) != 0) return not_started("pipe");
  if (::pipe2(err, O_CLOEXEC) != 0) {
    ::close(out[0]);
    ::close(out[1]);
    return not_started("pipe");
  }

  // The child gets the pipes as stdout and stderr, /dev/null as stdin, no other descriptor
  // of ours (Asio's sockets are not close-on-exec), no blocked signals and default
  // dispositions for those cairnd ignores.
  posix_spawn_file_actions_t files;
  posix_spawn_file_actions_init(&files);
  posix_spawn_file_actions_addopen(&files, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&files, out[1], 1);
  posix_spawn_file_actions_adddup2(&files, err[1], 2);
  posix_spawn_file_actions_addclosefrom_np(&files, 3);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t none, defaults;
  sigemptyset(&none);
  sigemptyset(&defaults);
  sigaddset(&defaults, SIGPIPE);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setsigdefault(&attr, &defaults);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  std::vector<std::string> args = {"cairnd",     "--verify-child",
                                   "--data",     options.data_dir,
                                   "--max-size", std::to_string(options.max_size)};
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = -1;
  int rc = posix_spawn(&pid, options.exe.c_str(), &files, &attr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&files);
  posix_spawnattr_destroy(&attr);
  ::close(out[1]);
  ::close(err[1]);
  if (rc != 0) {
    ::close(out[0]);
    ::close(err[0]);
    errno = rc;
    return not_started("posix_spawn " + options.exe);
  }

  // Read both pipes until the child closes them, the deadline passes or we are cancelled.
  const auto deadline = std::chrono::steady_clock::now() + options.timeout;
  std::string text;
  bool out_open = true, err_open = true, timed_out = false, cancelled = false;
  while (out_open || err_open) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      timed_out = true;
      break;
    }
    pollfd fds[3] = {{out_open ? out[0] : -1, POLLIN, 0},
                     {err_open ? err[0] : -1, POLLIN, 0},
                     {options.cancel_fd, POLLIN, 0}};
    int n = ::poll(fds, 3, int(std::min<int64_t>(left.count(), 1000)));
    if (n < 0 && errno != EINTR) break;
    if (n <= 0) continue;
    if (fds[2].revents != 0) {
      cancelled = true;
      break;
    }
    char buf[8192];
    if (fds[0].revents != 0) {
      ssize_t got = ::read(out[0], buf, sizeof buf);
      if (got > 0 && text.size() < kMaxReportBytes) text.append(buf, size_t(got));
      if (got == 0 || (got < 0 && errno != EINTR && errno != EAGAIN)) out_open = false;
    }
    if (fds[1].revents != 0) {
      ssize_t got = ::read(err[0], buf, sizeof buf);
      if (got > 0 && outcome.child_stderr.size() < kMaxStderrBytes) {
        outcome.child_stderr.append(
            buf, std::min(size_t(got), kMaxStderrBytes - outcome.child_stderr.size()));
      }
      if (got == 0 || (got < 0 && errno != EINTR && errno != EAGAIN)) err_open = false;
    }
  }
  ::close(out[0]);
  ::close(err[0]);

  // Reap it, always: killed if it is past its time or still running once its pipes closed
  // and the deadline came.
  int status = 0;
  if (timed_out || cancelled) ::kill(pid, SIGKILL);
  while (true) {
    pid_t r = ::waitpid(pid, &status, timed_out || cancelled ? 0 : WNOHANG);
    if (r == pid) break;
    if (r < 0 && errno != EINTR) break;
    if (r == 0) {
      if (std::chrono::steady_clock::now() >= deadline) {
        timed_out = true;
        ::kill(pid, SIGKILL);
      } else {
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
      }
    }
  }

  std::string last_part;
  VerifyReport parsed;
  bool complete = ParseReport(text, &parsed, &last_part);
  std::string first;
  if (cancelled) {
    outcome.end = VerifyOutcome::End::kCancelled;
    first = "not checked to the end: the server is shutting down";
  } else if (timed_out) {
    outcome.end = VerifyOutcome::End::kTimedOut;
    first = "not checked to the end: the verifier was still at work" + WhileDoing(last_part) +
            " after " + std::to_string(options.timeout.count()) +
            " ms and was stopped (a damaged file can make it go round in circles; a large "
            "database may need a longer --verify-timeout)";
  } else if (complete && WIFEXITED(status) && WEXITSTATUS(status) == 0) {
    outcome.end = VerifyOutcome::End::kCompleted;
    outcome.report = std::move(parsed);
    return outcome;
  } else {
    outcome.end = VerifyOutcome::End::kDamaged;
    first = "structurally damaged: the verifier " + HowItEnded(status) + WhileDoing(last_part) +
            "; restore from a backup";
    if (!outcome.child_stderr.empty()) first += " (it said: " + OneLine(outcome.child_stderr) + ")";
  }
  outcome.report = std::move(parsed);
  outcome.report.problems.insert(outcome.report.problems.begin(), std::move(first));
  return outcome;
}

}  // namespace cairn::server

// Running one of the project's programs as a user would: a shell command with its
// stdin from a string, and its exit code, stdout and stderr captured.
#pragma once

#include <sys/wait.h>

#include <cstdlib>
#include <fstream>
#include <iterator>
#include <string>

#include "temp_dir.h"

namespace cairn::testing {

struct CommandRun {
  int code = -1;  // the exit code; -1 if the command did not exit normally
  std::string out, err;
};

// Runs `command` through the shell, with `input` on stdin; the files it needs go in
// `scratch`.
inline CommandRun RunCommand(const std::string& command, const TempDir& scratch,
                             const std::string& input = "") {
  std::string in = scratch.Sub("stdin"), out = scratch.Sub("stdout"), err = scratch.Sub("stderr");
  std::ofstream(in) << input;
  int status = std::system((command + " <" + in + " >" + out + " 2>" + err).c_str());
  CommandRun r;
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  auto slurp = [](const std::string& p) {
    std::ifstream f(p);
    return std::string(std::istreambuf_iterator<char>(f), {});
  };
  r.out = slurp(out);
  r.err = slurp(err);
  return r;
}

}  // namespace cairn::testing

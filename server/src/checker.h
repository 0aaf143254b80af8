// The checker: one thread that runs the verifier for VerifyDatabase requests. A check
// reads the whole database, so it runs here rather than on an IO thread, whose other
// connections it would stall; and it runs in a child process (verifier.h), so that a
// damaged file that crashes the verifier yields a report, not a dead server. Checks run
// one at a time, in the order submitted.
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>

#include "cairn/engine/engine.h"
#include "verifier.h"

namespace cairn::server {

class Checker {
 public:
  // `options.cancel_fd` is the checker's own; whatever it holds is ignored.
  explicit Checker(VerifierOptions options);
  ~Checker();  // Stop()s

  // Thread-safe. `done` runs on the checker thread with the report; it must not block.
  // After Stop(), `done` runs at once with a report that says the server is stopping.
  void Submit(std::function<void(VerifyReport)> done);

  // Stops the check under way (its child is killed; its report says so), reports the
  // queued ones as not run, joins the thread.
  void Stop();

 private:
  void Run();

  VerifierOptions options_;
  int cancel_[2] = {-1, -1};  // a byte on cancel_[1] stops the check under way
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void(VerifyReport)>> queue_;  // guarded by mu_
  bool stopping_ = false;                                // guarded by mu_
  std::thread thread_;
};

}  // namespace cairn::server

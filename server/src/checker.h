// The checker: one thread that runs Engine::Verify for Verify requests. A check reads
// the whole database, so it runs here rather than on an IO thread, whose other
// connections it would stall; checks run one at a time, in the order submitted.
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>

#include "cairn/engine/engine.h"

namespace cairn::server {

class Checker {
 public:
  explicit Checker(Engine& engine);
  ~Checker();  // Stop()s

  // Thread-safe. `done` runs on the checker thread with the report; it must not block.
  // After Stop(), `done` runs at once with a report that says the server is stopping.
  void Submit(std::function<void(VerifyReport)> done);

  // Finishes the check under way, reports the queued ones as not run, joins the thread.
  void Stop();

 private:
  void Run();

  Engine& engine_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void(VerifyReport)>> queue_;  // guarded by mu_
  bool stopping_ = false;                                // guarded by mu_
  std::thread thread_;
};

}  // namespace cairn::server

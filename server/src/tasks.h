// A thread for requests that read the whole database (Digest): they run here, one at a
// time in the order submitted, rather than on an IO thread, whose other connections they
// would stall.
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>

namespace cairn::server {

class Tasks {
 public:
  Tasks() : thread_([this] { Run(); }) {}
  ~Tasks() { Stop(); }

  // Thread-safe. `task(false)` runs on the thread; after Stop(), `task(true)` runs at once
  // (the server is stopping: answer so).
  void Submit(std::function<void(bool stopping)> task) {
    {
      std::lock_guard lock(mu_);
      if (!stopping_) {
        queue_.push_back(std::move(task));
        cv_.notify_one();
        return;
      }
    }
    task(true);
  }

  // Runs what is queued as stopped, waits for the task under way, joins the thread.
  void Stop() {
    std::deque<std::function<void(bool)>> left;
    {
      std::lock_guard lock(mu_);
      stopping_ = true;
      left.swap(queue_);
      cv_.notify_one();
    }
    for (auto& t : left) t(true);
    if (thread_.joinable()) thread_.join();
  }

  bool stopping() {
    std::lock_guard lock(mu_);
    return stopping_;
  }

 private:
  void Run() {
    while (true) {
      std::function<void(bool)> task;
      {
        std::unique_lock lock(mu_);
        cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
        if (queue_.empty()) return;
        task = std::move(queue_.front());
        queue_.pop_front();
      }
      task(false);
    }
  }

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void(bool)>> queue_;  // guarded by mu_
  bool stopping_ = false;                        // guarded by mu_
  std::thread thread_;
};

}  // namespace cairn::server

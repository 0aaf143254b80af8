// The writer: one thread that owns the write path. Connections submit write
// jobs (transactions and catalog changes); the writer takes everything queued,
// runs consecutive transactions as one group commit (Engine::ExecuteBatch: one
// LMDB commit, one fsync) and completes each job. Jobs complete in the order
// they were submitted.
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>

#include "cairn/engine/engine.h"
#include "stats.h"

namespace cairn::server {

class WriteJob {
 public:
  virtual ~WriteJob() = default;
  // A transaction to group-commit, or nullptr for a catalog change (RunCatalog).
  virtual const Transaction* txn() const = 0;
  virtual Status RunCatalog(Engine& engine) = 0;
  // Called on the writer thread with the outcome; must not block.
  virtual void Complete(TxnResult result) = 0;
};

class Writer {
 public:
  // `on_commit`, if set, is called on the writer thread after each LMDB commit (group
  // commit or catalog change) that may have added commits, before its jobs complete.
  Writer(Engine& engine, ServerStats& stats, size_t max_batch,
         std::function<void()> on_commit = {});
  ~Writer();  // Stop()s

  // Thread-safe. After Stop() jobs are completed at once with kUnavailable.
  void Submit(std::unique_ptr<WriteJob> job);

  // Runs every job already submitted, then stops the thread.
  void Stop();

 private:
  void Run();
  // Counts and logs an exception from the engine, and makes the result its jobs get.
  TxnResult Failed(const char* kind, const std::exception& e);

  Engine& engine_;
  ServerStats& stats_;
  const size_t max_batch_;
  const std::function<void()> on_commit_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::unique_ptr<WriteJob>> queue_;  // guarded by mu_
  bool stopping_ = false;                        // guarded by mu_
  std::thread thread_;
};

}  // namespace cairn::server

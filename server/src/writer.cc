#include "writer.h"

#include <spdlog/spdlog.h>

#include <vector>

#include "fault.h"

namespace cairn::server {

Writer::Writer(Engine& engine, ServerStats& stats, size_t max_batch,
               std::function<void()> on_commit)
    : engine_(engine),
      stats_(stats),
      max_batch_(max_batch),
      on_commit_(std::move(on_commit)),
      thread_([this] { Run(); }) {}

Writer::~Writer() { Stop(); }

void Writer::Submit(std::unique_ptr<WriteJob> job) {
  {
    std::lock_guard lock(mu_);
    if (!stopping_) {
      queue_.push_back(std::move(job));
      cv_.notify_one();
      return;
    }
  }
  job->Complete(TxnResult{Status(Code::kUnavailable, "the server is shutting down"), 0, {}});
}

void Writer::Stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_one();
  if (thread_.joinable()) thread_.join();
}

TxnResult Writer::Failed(const char* kind, const std::exception& e) {
  stats_.internal_errors++;
  spdlog::error("internal error running a {} on the writer: {}", kind, e.what());
  return TxnResult{Status(Code::kInternal, std::string("internal error running this ") + kind +
                                               "; it may or may not have been applied; the "
                                               "server log has the details"),
                   0,
                   {}};
}

void Writer::Run() {
  std::vector<std::unique_ptr<WriteJob>> jobs;
  std::vector<const Transaction*> batch;
  while (true) {
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping, and everything submitted has run
      jobs.clear();
      while (!queue_.empty()) {
        jobs.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
    }
    for (size_t i = 0; i < jobs.size();) {
      if (!jobs[i]->txn()) {
        TxnResult r;
        try {
          r.status = jobs[i]->RunCatalog(engine_);
          if (r.status.ok()) r.commit = engine_.LastCommit();
        } catch (const std::exception& e) {
          r = Failed("catalog change", e);
        }
        if (r.status.ok() && on_commit_) on_commit_();
        jobs[i]->Complete(std::move(r));
        i++;
        continue;
      }
      batch.clear();
      size_t j = i;
      for (; j < jobs.size() && jobs[j]->txn() && batch.size() < max_batch_; j++) {
        batch.push_back(jobs[j]->txn());
      }
      std::vector<TxnResult> results;
      try {
        for (const Transaction* t : batch) InjectFault("writer", t->idempotency_key);
        results = engine_.ExecuteBatch(batch);
      } catch (const std::exception& e) {
        // The engine throws nothing but bad_alloc; whether the batch committed is unknown.
        results.assign(batch.size(), Failed("write", e));
        stats_.internal_errors += batch.size() - 1;  // one per transaction answered Internal
      }
      stats_.batch_sizes.Record(batch.size());
      if (on_commit_) on_commit_();
      for (size_t k = 0; k < results.size(); k++) jobs[i + k]->Complete(std::move(results[k]));
      i = j;
    }
    jobs.clear();  // a job holds its connection: let go of it now, not at the next batch
  }
}

}  // namespace cairn::server

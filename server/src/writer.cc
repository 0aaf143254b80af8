#include "writer.h"

#include <vector>

namespace cairn::server {

Writer::Writer(Engine& engine, ServerStats& stats, size_t max_batch)
    : engine_(engine), stats_(stats), max_batch_(max_batch), thread_([this] { Run(); }) {}

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
        r.status = jobs[i]->RunCatalog(engine_);
        if (r.status.ok()) r.commit = engine_.LastCommit();
        jobs[i]->Complete(std::move(r));
        i++;
        continue;
      }
      batch.clear();
      size_t j = i;
      for (; j < jobs.size() && jobs[j]->txn() && batch.size() < max_batch_; j++) {
        batch.push_back(jobs[j]->txn());
      }
      std::vector<TxnResult> results = engine_.ExecuteBatch(batch);
      stats_.batch_sizes.Record(batch.size());
      for (size_t k = 0; k < results.size(); k++) jobs[i + k]->Complete(std::move(results[k]));
      i = j;
    }
    jobs.clear();  // a job holds its connection: let go of it now, not at the next batch
  }
}

}  // namespace cairn::server

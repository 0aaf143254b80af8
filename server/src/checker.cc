#include "checker.h"

namespace cairn::server {

namespace {
VerifyReport NotRun() {
  VerifyReport r;
  r.problems.push_back("not checked: the server is shutting down");
  return r;
}
}  // namespace

Checker::Checker(Engine& engine) : engine_(engine), thread_([this] { Run(); }) {}

Checker::~Checker() { Stop(); }

void Checker::Submit(std::function<void(VerifyReport)> done) {
  {
    std::lock_guard lock(mu_);
    if (!stopping_) {
      queue_.push_back(std::move(done));
      cv_.notify_one();
      return;
    }
  }
  done(NotRun());
}

void Checker::Stop() {
  std::deque<std::function<void(VerifyReport)>> left;
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
    left.swap(queue_);
    cv_.notify_one();
  }
  for (auto& done : left) done(NotRun());
  if (thread_.joinable()) thread_.join();
}

void Checker::Run() {
  while (true) {
    std::function<void(VerifyReport)> done;
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;
      done = std::move(queue_.front());
      queue_.pop_front();
    }
    done(engine_.Verify());
  }
}

}  // namespace cairn::server

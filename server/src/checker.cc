#include "checker.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

namespace cairn::server {

namespace {
VerifyReport NotRun() {
  VerifyReport r;
  r.problems.push_back("not checked: the server is shutting down");
  return r;
}
}  // namespace

Checker::Checker(VerifierOptions options) : options_(std::move(options)) {
  if (::pipe2(cancel_, O_CLOEXEC) != 0) cancel_[0] = cancel_[1] = -1;  // checks not cancellable
  options_.cancel_fd = cancel_[0];
  thread_ = std::thread([this] { Run(); });
}

Checker::~Checker() {
  Stop();
  for (int fd : cancel_) {
    if (fd >= 0) ::close(fd);
  }
}

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
    if (!stopping_ && cancel_[1] >= 0) {
      char c = 1;
      if (::write(cancel_[1], &c, 1) != 1) spdlog::warn("cannot cancel the check under way");
    }
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
    VerifyOutcome outcome = RunVerifier(options_);
    if (!outcome.finished()) {
      spdlog::error("verify: {}", outcome.report.problems.front());
    } else if (!outcome.report.ok()) {
      spdlog::warn("verify: {} problem(s); the first: {}", outcome.report.problems.size(),
                   outcome.report.problems.front());
    }
    if (!outcome.child_stderr.empty())
      spdlog::warn("verify: the verifier said: {}", outcome.child_stderr);
    done(std::move(outcome.report));
  }
}

}  // namespace cairn::server

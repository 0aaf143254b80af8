#include "replicas.h"

#include <spdlog/spdlog.h>

#include <algorithm>

namespace cairn::server {

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// A write waiting for its commit to reach n followers. `fired` makes its end happen once,
// whichever comes first: the acks or the timer.
struct ReplicaRegistry::Waiter {
  uint64_t commit = 0;
  uint32_t n = 0;
  asio::any_io_executor executor;
  Done done;
  std::unique_ptr<asio::steady_timer> timer;
  std::atomic<bool> fired{false};
};

ReplicaRegistry::ReplicaRegistry(Engine& engine, std::chrono::seconds keep)
    : engine_(engine), keep_(keep) {}

ReplicaRegistry::~ReplicaRegistry() {
  std::lock_guard lock(mu_);
  for (auto& w : waiters_) {
    if (w->timer) w->timer->cancel();
  }
}

// --- Followers.

uint64_t ReplicaRegistry::Connect(const std::string& name, const std::string& address,
                                  uint64_t from) {
  std::lock_guard lock(mu_);
  uint64_t handle = next_handle_++;
  Follower& f = followers_[name];
  if (f.handle != 0) handles_.erase(f.handle);  // its old stream is dead or about to be
  f.handle = handle;
  f.row.name = name;
  f.row.address = address;
  f.row.connected = true;
  f.row.last_seen_ms = NowMs();
  // What it has is everything before `from`; a follower that bootstrapped again may be
  // behind or ahead of what it had acknowledged before.
  f.row.applied = from > 0 ? from - 1 : 0;
  handles_[handle] = name;
  UpdateHoldLocked();
  return handle;
}

void ReplicaRegistry::Ack(uint64_t handle, uint64_t applied, uint64_t applied_time_ms) {
  std::vector<std::pair<std::shared_ptr<Waiter>, uint32_t>> ready;
  {
    std::lock_guard lock(mu_);
    auto h = handles_.find(handle);
    if (h == handles_.end()) return;
    Follower& f = followers_[h->second];
    f.row.applied = std::max(f.row.applied, applied);
    f.row.applied_time_ms = applied_time_ms;
    f.row.last_seen_ms = NowMs();
    UpdateHoldLocked();
    for (auto it = waiters_.begin(); it != waiters_.end();) {
      uint32_t count = CountLocked((*it)->commit);
      if (count >= (*it)->n) {
        ready.emplace_back(*it, count);
        it = waiters_.erase(it);
      } else {
        ++it;
      }
    }
  }
  for (auto& [w, count] : ready) Fire(w, count, false);
}

void ReplicaRegistry::Disconnect(uint64_t handle) {
  std::lock_guard lock(mu_);
  auto h = handles_.find(handle);
  if (h == handles_.end()) return;
  Follower& f = followers_[h->second];
  if (f.handle == handle) {
    f.handle = 0;
    f.row.connected = false;
    f.row.last_seen_ms = NowMs();
  }
  handles_.erase(h);
  UpdateHoldLocked();
}

size_t ReplicaRegistry::connected() const {
  std::lock_guard lock(mu_);
  return handles_.size();
}

void ReplicaRegistry::ExpireLocked(int64_t now_ms) {
  int64_t keep_ms = int64_t(keep_.count()) * 1000;
  for (auto it = followers_.begin(); it != followers_.end();) {
    if (!it->second.row.connected && now_ms - it->second.row.last_seen_ms > keep_ms) {
      spdlog::info("replica {} not seen for {} s: no longer holding the change log for it",
                   it->first, keep_.count());
      it = followers_.erase(it);
    } else {
      ++it;
    }
  }
}

// The log is kept from the oldest commit a connected or recently seen follower still
// needs; the engine bounds it by --replica-log-keep (a follower further behind
// bootstraps again).
void ReplicaRegistry::UpdateHoldLocked() {
  ExpireLocked(NowMs());
  uint64_t hold = 0;
  for (const auto& [name, f] : followers_) {
    uint64_t need = f.row.applied + 1;
    hold = hold == 0 ? need : std::min(hold, need);
  }
  engine_.HoldLog(hold);
}

void ReplicaRegistry::Refresh() {
  std::lock_guard lock(mu_);
  UpdateHoldLocked();
}

std::vector<ReplicaRow> ReplicaRegistry::List() {
  std::vector<ReplicaRow> rows;
  {
    std::lock_guard lock(mu_);
    UpdateHoldLocked();
    for (const auto& [name, f] : followers_) rows.push_back(f.row);
  }
  uint64_t last = engine_.LastCommit();
  int64_t now = NowMs();
  for (ReplicaRow& r : rows) {
    r.lag_commits = last > r.applied ? last - r.applied : 0;
    r.lag_ms = 0;
    if (r.lag_commits > 0) {
      // Lag in time: how long ago the oldest commit it lacks was made.
      std::vector<LogEntry> next;
      if (engine_.ReadLog(r.applied + 1, 1, 1, &next).ok() && !next.empty() &&
          next[0].time_ms > 0) {
        r.lag_ms = uint64_t(std::max<int64_t>(0, now - int64_t(next[0].time_ms)));
      }
    }
  }
  return rows;
}

// --- The synchronous acknowledgement.

uint32_t ReplicaRegistry::CountLocked(uint64_t commit) const {
  uint32_t n = 0;
  for (const auto& [name, f] : followers_) {
    if (f.row.applied >= commit) n++;
  }
  return n;
}

uint32_t ReplicaRegistry::AppliedAtLeast(uint64_t commit) const {
  std::lock_guard lock(mu_);
  return CountLocked(commit);
}

size_t ReplicaRegistry::waiting() const {
  std::lock_guard lock(mu_);
  return waiters_.size();
}

void ReplicaRegistry::WaitFor(uint64_t commit, uint32_t n, std::chrono::milliseconds timeout,
                              asio::any_io_executor executor, Done done) {
  auto w = std::make_shared<Waiter>();
  w->commit = commit;
  w->n = n;
  w->executor = executor;
  w->done = std::move(done);
  {
    std::lock_guard lock(mu_);
    uint32_t count = CountLocked(commit);
    if (count < n) {
      w->timer = std::make_unique<asio::steady_timer>(executor, timeout);
      waiters_.push_back(w);
      // The timer holds the waiter, and only a weak reference to the registry is needed:
      // the registry outlives the IO threads that run the timers.
      w->timer->async_wait([this, w](const asio::error_code& ec) {
        if (ec) return;
        uint32_t count;
        {
          std::lock_guard lock(mu_);
          waiters_.remove(w);
          count = CountLocked(w->commit);
        }
        if (count < w->n) sync_timeouts_++;
        Fire(w, count, count < w->n);
      });
      return;
    }
    // Already there: answer at once (still through the executor, as always).
    asio::post(executor, [w, count] { w->done(count, false); });
    w->fired = true;
  }
}

void ReplicaRegistry::Fire(const std::shared_ptr<Waiter>& w, uint32_t count, bool timed_out) {
  if (w->fired.exchange(true)) return;
  asio::post(w->executor, [w, count, timed_out] {
    if (w->timer) w->timer->cancel();
    w->done(count, timed_out);
  });
}

}  // namespace cairn::server

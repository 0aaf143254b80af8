// Engine::StartSnapshot: a hot, consistent, compacted copy of the database, written by
// LMDB's compacting copy into a pipe on a thread of its own (docs/storage.md,
// "Snapshots").
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "engine_impl.h"

namespace cairn {

namespace {

class PipeCopy final : public SnapshotCopy {
 public:
  explicit PipeCopy(int read_fd) : read_fd_(read_fd) {}
  ~PipeCopy() override { Stop(); }

  uint64_t commit() const override { return commit_; }
  const std::vector<EpochStart>& history() const override { return history_; }
  int fd() const override { return read_fd_; }
  Status Finish() override {
    Stop();
    return status_;
  }

  // Runs mdb_env_copyfd2 into `write_fd` (which the thread closes when LMDB is done:
  // the reader's end of file).
  void Start(MDB_env* env, int write_fd, std::string dir) {
    thread_ = std::thread([this, env, write_fd, dir = std::move(dir)] {
      // LMDB's compacting copy writes from a thread it creates, which inherits this mask;
      // with SIGPIPE blocked, a write into a pipe whose reader has gone fails with EPIPE
      // (LMDB blocks it there too, and collects the pending signal) instead of killing
      // the process.
      sigset_t set;
      sigemptyset(&set);
      sigaddset(&set, SIGPIPE);
      pthread_sigmask(SIG_BLOCK, &set, nullptr);
      int rc = mdb_env_copyfd2(env, write_fd, MDB_CP_COMPACT);
      ::close(write_fd);
      if (rc == EPIPE) {
        status_ = Status(Code::kUnavailable, "the snapshot of " + dir +
                                                 " was stopped before its end: its reader "
                                                 "closed the pipe");
      } else if (rc != 0) {
        status_ = internal::MdbStatus(rc, "snapshot of " + dir);
      }
    });
  }

  // What the snapshot holds: set once the copy has begun (WaitForStart).
  void Taken(uint64_t commit, std::vector<EpochStart> history) {
    commit_ = commit;
    history_ = std::move(history);
  }

  // Waits until the copy has begun its read transaction (its first bytes are in the pipe)
  // or has ended. Ok if it began.
  Status WaitForStart() {
    pollfd p{read_fd_, POLLIN, 0};
    while (::poll(&p, 1, -1) < 0) {
      if (errno != EINTR)
        return Status(Code::kInternal, std::string("poll: ") + std::strerror(errno));
    }
    if (p.revents & POLLIN) return Status::Ok();
    // The write end closed with nothing written: LMDB failed before it read anything.
    Stop();
    return status_.ok() ? Status(Code::kInternal, "the snapshot copy wrote nothing") : status_;
  }

 private:
  void Stop() {
    // Closing the read end first makes the copy's next write fail (EPIPE), so the join
    // never waits for a reader that stopped reading.
    if (read_fd_ >= 0) ::close(read_fd_);
    read_fd_ = -1;
    if (thread_.joinable()) thread_.join();
  }

  int read_fd_;
  uint64_t commit_ = 0;
  std::vector<EpochStart> history_;
  std::thread thread_;
  Status status_;  // written by the thread, read after the join
};

}  // namespace

Result<std::unique_ptr<SnapshotCopy>> Engine::StartSnapshot() const {
  Impl& impl = *impl_;
  // The snapshot's commit number is known only if no other writer can commit while the
  // copy begins: this process's writers all hold write_mu_; another process's cannot run
  // (cairn.lock), except beside a read-only Engine.
  if (impl.options_.read_only) {
    return Status(Code::kBadRequest,
                  "a snapshot is taken by the Engine that writes the database, "
                  "not a read-only one");
  }
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) {
    return Status(Code::kInternal, std::string("pipe: ") + std::strerror(errno));
  }
  // LMDB writes 1 MiB buffers: a pipe that takes one whole costs fewer wake-ups. The size
  // is capped for unprivileged processes (/proc/sys/fs/pipe-max-size); best effort.
  (void)::fcntl(fds[1], F_SETPIPE_SZ, 1 << 20);
  auto copy = std::make_unique<PipeCopy>(fds[0]);
  {
    // mdb_env_copyfd1 (LMDB 0.9.24) begins its read transaction before it writes
    // anything: bytes in the pipe mean the snapshot is taken. Until then no commit may
    // happen, so that the commit read below is the snapshot's. docs/storage.md,
    // "Snapshots".
    std::lock_guard lock(impl.write_mu_);
    copy->Start(impl.env_, fds[1], impl.dir_);
    if (Status s = copy->WaitForStart(); !s.ok()) return s;
    copy->Taken(impl.last_commit_, impl.History());
  }
  return std::unique_ptr<SnapshotCopy>(std::move(copy));
}

}  // namespace cairn

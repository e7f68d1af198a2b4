#include "tests/support/child_process.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"

namespace chat::testing {

absl::StatusOr<std::unique_ptr<ChildProcess>> ChildProcess::Start(std::vector<std::string> argv) {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) return absl::InternalError("pipe failed");
  std::vector<char*> args;
  for (auto& a : argv) args.push_back(a.data());
  args.push_back(nullptr);
  const pid_t parent = getpid();
  pid_t pid = fork();
  if (pid < 0) return absl::InternalError("fork failed");
  if (pid == 0) {
    // The child dies with the test, even if the test is killed.
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(127);
    dup2(fds[1], STDERR_FILENO);
    execv(args[0], args.data());
    _exit(127);
  }
  close(fds[1]);
  return std::unique_ptr<ChildProcess>(new ChildProcess(pid, fds[0]));
}

ChildProcess::ChildProcess(pid_t pid, int stderr_fd)
    : pid_(pid), stderr_fd_(stderr_fd), reader_([this] { ReadLoop(); }) {}

ChildProcess::~ChildProcess() {
  if (!WaitExit(absl::ZeroDuration()).has_value()) {
    kill(pid_, SIGKILL);
    WaitExit(absl::Seconds(10));
  }
  reader_.join();
  close(stderr_fd_);
}

void ChildProcess::ReadLoop() {
  char buffer[4096];
  while (true) {
    ssize_t n = read(stderr_fd_, buffer, sizeof(buffer));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      absl::MutexLock lock(&mu_);
      if (!partial_.empty()) lines_.push_back(std::exchange(partial_, ""));
      drained_ = true;
      break;
    }
    absl::MutexLock lock(&mu_);
    partial_.append(buffer, n);
    size_t newline;
    while ((newline = partial_.find('\n')) != std::string::npos) {
      lines_.push_back(partial_.substr(0, newline));
      partial_.erase(0, newline + 1);
    }
  }
}

absl::StatusOr<std::string> ChildProcess::WaitForLine(const std::string& needle,
                                                      absl::Duration timeout, size_t from_line) {
  const absl::Time deadline = absl::Now() + timeout;
  while (true) {
    {
      absl::MutexLock lock(&mu_);
      for (size_t i = from_line; i < lines_.size(); ++i) {
        if (lines_[i].find(needle) != std::string::npos) return lines_[i];
      }
    }
    if (absl::Now() >= deadline) break;
    absl::SleepFor(absl::Milliseconds(10));
  }
  absl::MutexLock lock(&mu_);
  return absl::DeadlineExceededError(
      absl::StrCat("no line with \"", needle, "\" in:\n", absl::StrJoin(lines_, "\n")));
}

absl::StatusOr<int> ChildProcess::WaitForField(const std::string& needle, const std::string& key,
                                               absl::Duration timeout) {
  absl::StatusOr<std::string> line = WaitForLine(needle, timeout);
  if (!line.ok()) return line.status();
  size_t at = line->find(" " + key + "=");
  if (at == std::string::npos) return absl::NotFoundError(absl::StrCat(key, " not in ", *line));
  std::string value = line->substr(at + key.size() + 2);
  value = value.substr(0, value.find(' '));
  int n = 0;
  if (!absl::SimpleAtoi(value, &n)) return absl::InvalidArgumentError(*line);
  return n;
}

size_t ChildProcess::line_count() {
  absl::MutexLock lock(&mu_);
  return lines_.size();
}

void ChildProcess::Signal(int signal) { kill(pid_, signal); }

std::optional<int> ChildProcess::WaitExit(absl::Duration timeout) {
  if (exit_code_.has_value()) return exit_code_;
  const absl::Time deadline = absl::Now() + timeout;
  while (true) {
    int status = 0;
    pid_t r = waitpid(pid_, &status, WNOHANG);
    if (r == pid_) {
      exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      // Output() after this holds the child's last words (the reader may not
      // have read them yet); bounded, as a grandchild could hold the pipe.
      absl::MutexLock lock(&mu_);
      mu_.AwaitWithTimeout(absl::Condition(&drained_), absl::Seconds(2));
      return exit_code_;
    }
    if (absl::Now() >= deadline) return std::nullopt;
    absl::SleepFor(absl::Milliseconds(10));
  }
}

std::string ChildProcess::Output() {
  absl::MutexLock lock(&mu_);
  return absl::StrJoin(lines_, "\n");
}

}  // namespace chat::testing

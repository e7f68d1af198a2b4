// ChildProcess: runs a real binary for end-to-end tests, collects its stderr
// (our services log there) and lets a test wait for a log line, signal it and
// reap it. The destructor kills what is still running.
//
//   auto p = ChildProcess::Start({GROUPSVC_BIN, "--listen=127.0.0.1:0"});
//   absl::StatusOr<std::string> line = (*p)->WaitForLine(" listening ", absl::Seconds(10));
#ifndef CHAT_TESTS_SUPPORT_CHILD_PROCESS_H_
#define CHAT_TESTS_SUPPORT_CHILD_PROCESS_H_

#include <sys/types.h>

#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace chat::testing {

class ChildProcess {
 public:
  static absl::StatusOr<std::unique_ptr<ChildProcess>> Start(std::vector<std::string> argv);
  ~ChildProcess();

  // The first stderr line (from `from_line` on) that contains `needle`.
  absl::StatusOr<std::string> WaitForLine(const std::string& needle, absl::Duration timeout,
                                          size_t from_line = 0);
  // The integer after "key=" in the first line containing `needle`.
  absl::StatusOr<int> WaitForField(const std::string& needle, const std::string& key,
                                   absl::Duration timeout);
  size_t line_count();
  void Signal(int signal);
  // The exit code (128 + signal when killed); nullopt if still running at `timeout`.
  std::optional<int> WaitExit(absl::Duration timeout);
  std::string Output();
  pid_t pid() const { return pid_; }

 private:
  ChildProcess(pid_t pid, int stderr_fd);
  void ReadLoop();

  const pid_t pid_;
  const int stderr_fd_;
  std::thread reader_;
  absl::Mutex mu_;
  std::vector<std::string> lines_ ABSL_GUARDED_BY(mu_);
  std::string partial_ ABSL_GUARDED_BY(mu_);
  // The pipe reached its end: every line the child wrote is in lines_.
  bool drained_ ABSL_GUARDED_BY(mu_) = false;
  std::optional<int> exit_code_;
};

}  // namespace chat::testing

#endif  // CHAT_TESTS_SUPPORT_CHILD_PROCESS_H_

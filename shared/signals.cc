#include "shared/signals.h"

#include <signal.h>
#include <string.h>

namespace chat {
namespace {

sigset_t TerminationSignals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  return set;
}

}  // namespace

void BlockTerminationSignals() {
  sigset_t set = TerminationSignals();
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  // A peer that vanishes mid-write must not kill the process.
  signal(SIGPIPE, SIG_IGN);
}

const char* WaitForTerminationSignal() {
  sigset_t set = TerminationSignals();
  int number = 0;
  sigwait(&set, &number);
  return strsignal(number);
}

}  // namespace chat

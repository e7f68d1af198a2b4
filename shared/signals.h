// Graceful shutdown on SIGTERM/SIGINT without signal handlers: block them in
// every thread (call first, before any thread starts), then wait in main.
//
//   chat::BlockTerminationSignals();
//   ... start the server ...
//   const char* name = chat::WaitForTerminationSignal();  // "Terminated"
#ifndef CHAT_SHARED_SIGNALS_H_
#define CHAT_SHARED_SIGNALS_H_

namespace chat {

void BlockTerminationSignals();
// Blocks until SIGTERM or SIGINT arrives; returns its description.
const char* WaitForTerminationSignal();

}  // namespace chat

#endif  // CHAT_SHARED_SIGNALS_H_

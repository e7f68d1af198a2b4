// EventLoops: the threads a layer hands its deliveries to, as the layer sees
// them. The edge implements it with its I/O threads (edge/net/io_pool.h): a
// channel is registered with the loop its connection is pinned to, and every
// event for it runs there, so a consumer never runs on two threads.
//
// Why an interface: the Channels model (this folder) knows no sockets; tests
// use InlineLoops, which runs everything on the calling thread.
//
// The edge's one way to defer work to the end of a batch is Post onto the
// current loop: it runs behind the handlers already queued there, so one
// round's work is done once (ChannelTable's hand-off of a round's deliveries,
// AttachCall's write of a round's commands, WebSocketSession's write of a
// round's frames, which posts on its socket's executor: the same loop).
#ifndef CHAT_EDGE_CHANNELS_EVENT_LOOPS_H_
#define CHAT_EDGE_CHANNELS_EVENT_LOOPS_H_

#include <cstddef>
#include <functional>

namespace edge {

class EventLoops {
 public:
  static constexpr size_t kNone = static_cast<size_t>(-1);

  virtual ~EventLoops() = default;
  virtual size_t size() const = 0;
  // Runs `fn` on loop `loop` (< size()), after the handlers already queued
  // there. Any thread.
  virtual void Post(size_t loop, std::function<void()> fn) = 0;
  // The loop the calling thread runs, or kNone.
  virtual size_t current() const = 0;
};

// One loop: the calling thread, at once. For tests and tools.
class InlineLoops : public EventLoops {
 public:
  size_t size() const override { return 1; }
  void Post(size_t, std::function<void()> fn) override { fn(); }
  size_t current() const override { return 0; }
};

}  // namespace edge

#endif  // CHAT_EDGE_CHANNELS_EVENT_LOOPS_H_

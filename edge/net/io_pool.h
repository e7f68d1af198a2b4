// IoPool: the edge's I/O threads, the one threading model of the edge in
// tests, benchmarks and production: N io_contexts with one thread each.
//
// A connection is pinned to one loop for its life (Next() deals them out in
// turn): its socket, timers and consumer run only there, one handler at a
// time, so sessions need no strand and no lock. Other threads reach a session
// only by posting to its loop: the layer's deliveries arrive in one hand-off
// per loop per batch (ChannelTable groups recipients by loop), never one per
// recipient; acks and shutdown post too.
//
//   IoPool pool(2);
//   pool.Start();
//   tcp::socket s(pool.context(pool.Next()));
//   pool.Stop(); pool.Join();
#ifndef CHAT_EDGE_NET_IO_POOL_H_
#define CHAT_EDGE_NET_IO_POOL_H_

#include <atomic>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <memory>
#include <optional>
#include <thread>
#include <vector>

#include "edge/channels/event_loops.h"

namespace edge {

class IoPool : public EventLoops {
 public:
  explicit IoPool(int threads);
  ~IoPool() override;

  boost::asio::io_context& context(size_t loop) { return *loops_[loop]->ioc; }
  // The loop for a new connection (round robin).
  size_t Next();

  // Starts one thread per loop.
  void Start();
  // Stops every loop now and waits for its thread.
  void Stop();
  void Join();
  // After Join: destroys every handler still queued (and with them the
  // sessions they hold), loop by loop; Post then drops what it is given.
  // Called by the edge at shutdown, since a session may hold the layer that
  // holds this pool.
  void DestroyHandlers();

  // EventLoops.
  size_t size() const override { return loops_.size(); }
  void Post(size_t loop, std::function<void()> fn) override;
  size_t current() const override;

 private:
  struct Loop {
    std::unique_ptr<boost::asio::io_context> ioc;
    std::optional<boost::asio::executor_work_guard<boost::asio::io_context::executor_type>> work;
    std::thread thread;
  };
  std::vector<std::unique_ptr<Loop>> loops_;
  std::atomic<size_t> next_{0};
};

}  // namespace edge

#endif  // CHAT_EDGE_NET_IO_POOL_H_

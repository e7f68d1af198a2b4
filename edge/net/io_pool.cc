#include "edge/net/io_pool.h"

#include <boost/asio/post.hpp>

namespace edge {

namespace {

// Which pool's loop this thread runs (a process may hold several edges: tests).
thread_local const IoPool* current_pool = nullptr;
thread_local size_t current_loop = EventLoops::kNone;

}  // namespace

IoPool::IoPool(int threads) {
  const size_t n = threads < 1 ? 1 : static_cast<size_t>(threads);
  for (size_t i = 0; i < n; ++i) {
    auto loop = std::make_unique<Loop>();
    // One thread per context: Asio may skip its internal locking.
    loop->ioc = std::make_unique<boost::asio::io_context>(1);
    loop->work.emplace(loop->ioc->get_executor());
    loops_.push_back(std::move(loop));
  }
}

IoPool::~IoPool() {
  Stop();
  Join();
  DestroyHandlers();
}

size_t IoPool::Next() { return next_.fetch_add(1, std::memory_order_relaxed) % loops_.size(); }

void IoPool::Start() {
  for (size_t i = 0; i < loops_.size(); ++i) {
    Loop* loop = loops_[i].get();
    if (loop->thread.joinable()) continue;
    loop->thread = std::thread([this, loop, i] {
      current_pool = this;
      current_loop = i;
      loop->ioc->run();
      current_pool = nullptr;
      current_loop = kNone;
    });
  }
}

void IoPool::Stop() {
  for (auto& loop : loops_) {
    if (loop->ioc != nullptr) loop->ioc->stop();
  }
}

void IoPool::Join() {
  for (auto& loop : loops_) {
    if (loop->thread.joinable() && loop->thread.get_id() != std::this_thread::get_id()) {
      loop->thread.join();
    }
  }
}

void IoPool::DestroyHandlers() {
  for (auto& loop : loops_) {
    loop->work.reset();
    loop->ioc.reset();
  }
}

void IoPool::Post(size_t loop, std::function<void()> fn) {
  if (loops_[loop]->ioc == nullptr) return;  // Shut down.
  boost::asio::post(*loops_[loop]->ioc, std::move(fn));
}

size_t IoPool::current() const { return current_pool == this ? current_loop : kNone; }

}  // namespace edge

#include "edge/net/websocket_session.h"

#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/websocket.hpp>

#include "absl/strings/str_cat.h"
#include "shared/log.h"

namespace edge {

namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
namespace net = boost::asio;

// ---------------------------------------------------------- WebSocketSession

namespace {

// Reads take at most this much at a time, into a buffer each I/O thread owns.
constexpr size_t kReadChunk = 64 << 10;
// Consecutive reads from one socket before others get their turn.
constexpr int kReadsPerTurn = 4;
// A write gathers queued frames up to about this many bytes.
constexpr size_t kWriteBatchBytes = 256 << 10;
constexpr auto kCloseDeadline = std::chrono::seconds(2);

char* ThreadReadBuffer() {
  thread_local std::unique_ptr<char[]> buffer(new char[kReadChunk]);
  return buffer.get();
}

}  // namespace

void WebSocketSession::OnClose(uint16_t code, const std::string& reason) {
  if (state_ != State::kConnecting && state_ != State::kOpen) return;
  chat::LogEvent("ws_closed_by_operator", {{"channel", channel_},
                                           {"user", consumer_->scope().user_id},
                                           {"code", absl::StrCat(code)},
                                           {"reason", reason}});
  close_reason_ = reason;
  Close(code);
}

void WebSocketSession::CloseFromOutside(uint16_t code) {
  SetCloseUnsent(true);  // Until Close() finds there is nothing left to send.
  net::post(socket_.get_executor(), [self = shared_from_this(), code] {
    self->Close(code);
    if (self->close_frame_ == CloseFrame::kNone || self->close_frame_ == CloseFrame::kSent ||
        self->socket_state_ == Socket::kCut) {
      self->SetCloseUnsent(false);
    }
  });
}

void WebSocketSession::SetCloseUnsent(bool unsent) {
  // Each change counted once, whichever thread makes it.
  if (close_unsent_.exchange(unsent) != unsent) context_->sessions.CountUnsent(unsent ? 1 : -1);
}

std::optional<std::chrono::steady_clock::time_point> WebSocketSession::writing_since() const {
  const int64_t ns = writing_since_ns_.load(std::memory_order_relaxed);
  if (ns == 0) return std::nullopt;
  return std::chrono::steady_clock::time_point(std::chrono::nanoseconds(ns));
}

void WebSocketSession::CloseIfWritingSince(std::chrono::steady_clock::time_point cutoff) {
  net::post(socket_.get_executor(), [self = shared_from_this(), cutoff] {
    auto since = self->writing_since();
    if (!since.has_value() || *since >= cutoff || self->state_ != State::kOpen) return;
    self->CloseSlowReader("write_timeout");
  });
}

void WebSocketSession::CloseIfExpired(absl::Time now) {
  if (expires_ > now) return;
  net::post(socket_.get_executor(), [self = shared_from_this()] {
    if (self->state_ != State::kOpen) return;
    chat::LogEvent("ws_token_expired", {{"peer", self->peer_}});
    self->Close(kCloseTokenExpired);
  });
}

void WebSocketSession::OnEvent(const LayerEventPtr& event) {
  if (state_ == State::kConnecting || state_ == State::kOpen) consumer_->Dispatch(event);
}

std::function<void()> WebSocketSession::Bind(std::function<void()> fn) {
  return [weak = weak_from_this(), fn = std::move(fn)] {
    auto self = weak.lock();
    if (self == nullptr) return;
    net::post(self->socket_.get_executor(), [self, fn] {
      if (self->state_ != State::kClosed) fn();
    });
  };
}

void WebSocketSession::CountDrop(const char* reason) {
  context_->metrics->drops(reason).Increment();
}

// ---------------------------------------------------------------------- reads

void WebSocketSession::DoRead() {
  socket_.async_wait(
      net::ip::tcp::socket::wait_read,
      [self = shared_from_this()](boost::system::error_code ec) { self->OnReadable(ec); });
}

void WebSocketSession::OnReadable(boost::system::error_code ec) {
  if (socket_state_ == Socket::kCut) return;
  char* buffer = ThreadReadBuffer();
  for (int turn = 0; !ec && turn < kReadsPerTurn; ++turn) {
    const size_t n = socket_.read_some(net::buffer(buffer, kReadChunk), ec);
    if (ec == net::error::would_block) return DoRead();
    if (ec) break;
    if (!Consume(buffer, n)) return;
    // A short read emptied the socket; the wait re-checks readiness anyway.
    if (n < kReadChunk) return DoRead();
  }
  if (!ec) {
    net::post(socket_.get_executor(), [self = shared_from_this()] { self->OnReadable({}); });
    return;
  }
  // The peer went away without a close frame (or the socket was cut).
  Finish(state_ == State::kClosing ? close_code_ : kCloseAbnormal);
  Cut();
}

bool WebSocketSession::Consume(char* data, size_t size) {
  char* p = data;
  size_t length = size;
  if (!carry_.empty()) {
    if (size > 0) carry_.append(data, size);
    p = carry_.data();
    length = carry_.size();
  }
  size_t offset = 0;
  bool more = true;
  while (more && offset < length) {
    size_t used = 0;
    const WsInput in = parser_.Next(p + offset, length - offset, &used);
    if (in.kind == WsInput::kNeedMore) break;
    offset += used;
    more = OnInput(in);
  }
  if (!more || offset == length) {
    std::string().swap(carry_);  // Usually: no memory held between reads.
  } else if (p == carry_.data()) {
    carry_.erase(0, offset);
  } else {
    carry_.assign(p + offset, length - offset);
  }
  if (!more) return false;
  // A frame or message that trickles in must still arrive within the frame timeout.
  if (carry_.empty() && !parser_.in_message()) {
    partial_since_.reset();
  } else {
    const auto now = std::chrono::steady_clock::now();
    if (!partial_since_.has_value()) partial_since_ = now;
    if (now - *partial_since_ > absl::ToChronoNanoseconds(context_->options.frame_timeout)) {
      CountDrop("frame_timeout");
      chat::LogEvent("ws_frame_timeout", {{"channel", channel_}, {"peer", peer_}});
      CloseAndCut(kClosePolicy);
      return false;
    }
  }
  return true;
}

bool WebSocketSession::OnInput(const WsInput& in) {
  switch (in.kind) {
    case WsInput::kNeedMore:
      return true;
    case WsInput::kNone:
    case WsInput::kPong:  // Any whole frame is enough for the idle timer.
      liveness_ = Liveness::kHeard;
      return true;
    case WsInput::kMessage:
      liveness_ = Liveness::kHeard;
      context_->metrics->frames_in().Increment();
      if (state_ != State::kOpen) return true;
      if (in.binary) {
        CountDrop("binary_frame");
        consumer_->ReceiveBinary(std::string(in.payload));
      } else {
        consumer_->Receive(std::string(in.payload));
      }
      return state_ != State::kClosed;
    case WsInput::kPing:
      liveness_ = Liveness::kHeard;
      if (close_frame_ != CloseFrame::kNone) return true;
      pong_.emplace(in.payload);
      ScheduleWrite();
      return true;
    case WsInput::kClose:
      if (close_frame_ == CloseFrame::kNone) {
        CloseAndCut(in.code, Initiator::kPeer);  // The peer closes: echo its code.
        return false;
      }
      // The answer to our close: done.
      Finish(close_code_);
      if (close_frame_ == CloseFrame::kWriting) {
        socket_state_ = Socket::kCutAfterClose;
      } else {
        Cut();
      }
      return false;
    case WsInput::kError:
      if (in.code == kCloseTooBig) {
        CountDrop("too_big");
        chat::LogEvent("ws_too_big", {{"channel", channel_}, {"peer", peer_}});
      } else {
        CountDrop("protocol_error");
        chat::LogEvent("ws_protocol_error",
                       {{"channel", channel_}, {"peer", peer_}, {"code", absl::StrCat(in.code)}});
      }
      CloseAndCut(in.code);
      return false;
  }
  return false;
}

void WebSocketSession::CloseAndCut(uint16_t code, Initiator by) {
  // Asked before Finish: the consumer's Disconnect is its last callback.
  std::string last;
  if (state_ == State::kOpen && close_frame_ == CloseFrame::kNone && by == Initiator::kEdge) {
    last = Farewell(code);
  }
  Finish(code);  // Drops the queue.
  if (close_frame_ != CloseFrame::kNone) {
    Cut();
    return;
  }
  QueueLast(std::move(last));
  close_code_ = code;
  close_frame_ = CloseFrame::kQueued;
  SetCloseUnsent(true);
  socket_state_ = Socket::kCutAfterClose;
  ArmTimer(kCloseDeadline);
  DoWrite();
}

// --------------------------------------------------------------------- writes

void WebSocketSession::SendFrame(Frame text) {
  if (state_ != State::kOpen && state_ != State::kConnecting) return;
  if (queue_.size() >= context_->options.max_queue_frames ||
      queue_bytes_ + text->size() > context_->options.max_queue_bytes) {
    // The client stopped reading: it must not hold memory or slow the room.
    CloseSlowReader("slow_reader");
    return;
  }
  queue_bytes_ += text->size();
  queue_.push_back(std::move(text));
  if (state_ == State::kOpen) ScheduleWrite();
}

void WebSocketSession::CloseSlowReader(const char* reason) {
  CountDrop(reason);
  chat::LogEvent("ws_slow_reader", {{"channel", channel_},
                                    {"peer", peer_},
                                    {"reason", reason},
                                    {"queued", absl::StrCat(queue_.size())},
                                    {"writing", absl::StrCat(out_.size())}});
  DropQueued();
  if (writer_ == Writer::kWriting) {
    // Room in the kernel for the rest of the write in flight and the
    // farewell and close frames behind it, so that they go out now and a
    // reader that resumes reads 1013 after what it was sent.
    // Linux doubles what is set and wakes a writer only once a third of the
    // buffer is free, so the buffer grows to three times what it was, plus
    // the rest: bounded by the cap and one write batch.
    net::socket_base::send_buffer_size size;
    boost::system::error_code ec;
    socket_.get_option(size, ec);  // Asio undoes the doubling.
    if (!ec) {
      socket_.set_option(net::socket_base::send_buffer_size(3 * size.value() +
                                                            static_cast<int>(out_.size()) + 1024),
                         ec);
    }
  }
  Close(kCloseTryAgainLater);
}

// Writes wait for the handlers already queued on this thread, so that every
// frame a fan-out round brings goes out in one write.
void WebSocketSession::ScheduleWrite() {
  if (writer_ != Writer::kIdle) return;
  writer_ = Writer::kPosted;
  net::post(socket_.get_executor(), [self = shared_from_this()] {
    if (self->writer_ != Writer::kPosted) return;  // Written meanwhile.
    self->writer_ = Writer::kIdle;
    self->DoWrite();
  });
}

void WebSocketSession::DoWrite() {
  if (writer_ == Writer::kWriting || socket_state_ == Socket::kCut) return;
  // Nothing may follow a close frame.
  if (close_frame_ == CloseFrame::kWriting || close_frame_ == CloseFrame::kSent) return;
  if (pong_.has_value()) {
    AppendFrame(&out_, WsOpcode::kPong, *pong_);
    pong_.reset();
  }
  if (liveness_ == Liveness::kPingDue) {
    AppendFrame(&out_, WsOpcode::kPing, {});
    liveness_ = Liveness::kPinged;
  }
  size_t frames = 0;
  while (frames < queue_.size() && (frames == 0 || out_.size() < kWriteBatchBytes)) {
    AppendFrame(&out_, WsOpcode::kText, *queue_[frames]);
    queue_bytes_ -= queue_[frames]->size();
    ++frames;
  }
  queue_.erase(queue_.begin(), queue_.begin() + frames);
  if (queue_.empty() && queue_.capacity() > 16) std::vector<Frame>().swap(queue_);
  if (close_frame_ == CloseFrame::kQueued && queue_.empty()) {
    AppendFrame(&out_, WsOpcode::kClose, ClosePayload(close_code_, close_reason_));
    close_frame_ = CloseFrame::kWriting;
  }
  if (out_.empty()) {
    writer_ = Writer::kIdle;
    return;
  }
  writer_ = Writer::kWriting;
  writing_since_ns_.store(std::chrono::duration_cast<std::chrono::nanoseconds>(
                              std::chrono::steady_clock::now().time_since_epoch())
                              .count(),
                          std::memory_order_relaxed);
  out_frames_ = frames;
  net::async_write(
      socket_, net::buffer(out_),
      [self = shared_from_this()](boost::system::error_code ec, size_t) { self->OnWrite(ec); });
}

void WebSocketSession::OnWrite(boost::system::error_code ec) {
  writer_ = Writer::kIdle;
  writing_since_ns_.store(0, std::memory_order_relaxed);
  out_.clear();
  if (ec) {
    Finish(state_ == State::kClosing ? close_code_ : kCloseAbnormal);
    Cut();
  } else {
    context_->metrics->socket_writes().Increment();
    if (out_frames_ > 0)
      context_->metrics->frames_out().Increment(static_cast<double>(out_frames_));
    out_frames_ = 0;
    if (close_frame_ == CloseFrame::kWriting) {
      close_frame_ = CloseFrame::kSent;
      SetCloseUnsent(false);
      if (socket_state_ == Socket::kCutAfterClose) Cut();
    }
    DoWrite();  // Nothing once cut or closed.
  }
  if (writer_ != Writer::kWriting) std::string().swap(out_);  // Idle sockets hold no write buffer.
}

std::string WebSocketSession::Farewell(uint16_t code) {
  std::string last = consumer_->Farewell(code, close_reason_);
  if (close_reason_.empty()) close_reason_ = CloseExplained(code);
  return last;
}

void WebSocketSession::QueueLast(std::string last) {
  if (last.empty()) return;
  // Past the queue's bounds if need be: one small frame, and the last.
  queue_bytes_ += last.size();
  queue_.push_back(std::make_shared<const std::string>(std::move(last)));
}

void WebSocketSession::Close(uint16_t code) {
  switch (state_) {
    case State::kConnecting:
      Refuse(http::status::forbidden,
             close_reason_.empty() ? "refused by the consumer\n" : close_reason_ + "\n");
      return;
    case State::kOpen:
      state_ = State::kClosing;
      close_code_ = code;
      SetCloseUnsent(true);
      // Whatever is queued would only delay these closes.
      if (code == kCloseTryAgainLater || code == kCloseGoingAway) DropQueued();
      QueueLast(Farewell(code));
      close_frame_ = CloseFrame::kQueued;
      // If the socket cannot even take the close frame, cut it.
      ArmTimer(kCloseDeadline);
      DoWrite();
      return;
    case State::kClosing:
    case State::kClosed:
      return;
  }
}

// ---------------------------------------------------------------------- timer

void WebSocketSession::ArmTimer(std::chrono::steady_clock::duration after) {
  timer_.expires_after(after);
  timer_.async_wait([self = shared_from_this()](boost::system::error_code ec) {
    if (!ec) self->OnTimer();
  });
}

void WebSocketSession::OnTimer() {
  switch (state_) {
    case State::kConnecting:
      Refuse(http::status::service_unavailable,
             "the chat service did not admit the connection within the handshake timeout\n");
      return;
    case State::kOpen:
      // A client silent for a whole tick is pinged; silent for one more, dropped.
      if (liveness_ == Liveness::kHeard) {
        liveness_ = Liveness::kSilent;
      } else if (liveness_ == Liveness::kSilent) {
        liveness_ = Liveness::kPingDue;
        ScheduleWrite();
      } else {
        if (context_->options.log_connections) {
          chat::LogEvent("ws_idle_timeout", {{"channel", channel_}, {"peer", peer_}});
        }
        Finish(kCloseAbnormal);
        Cut();
        return;
      }
      ArmTimer(absl::ToChronoNanoseconds(context_->options.idle_timeout) / 2);
      return;
    case State::kClosing:
      Finish(close_code_);
      Cut();
      return;
    case State::kClosed:
      Cut();
      return;
  }
}

// ----------------------------------------------------------------------- end

void WebSocketSession::Finish(uint16_t code) {
  if (state_ == State::kClosed) return;
  const bool was_open = state_ == State::kOpen || state_ == State::kClosing;
  state_ = State::kClosed;
  if (was_open) context_->metrics->connections().Decrement();
  consumer_->Disconnect(code);
  consumer_->LeaveGroups();
  context_->layer->Unregister(channel_);
  context_->sessions.Remove(this);
  if (context_->options.log_connections) {
    chat::LogEvent("ws_close",
                   {{"channel", channel_}, {"peer", peer_}, {"code", absl::StrCat(code)}});
  }
  DropQueued();
}

void WebSocketSession::Cut() {
  if (socket_state_ == Socket::kCut) return;
  socket_state_ = Socket::kCut;
  SetCloseUnsent(false);
  timer_.cancel();
  boost::system::error_code ignored;
  socket_.shutdown(net::ip::tcp::socket::shutdown_both, ignored);
  socket_.close(ignored);
}

void WebSocketSession::DropQueued() {
  queue_bytes_ = 0;
  std::vector<Frame>().swap(queue_);  // What is being written is a copy.
}

}  // namespace edge

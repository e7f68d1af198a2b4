#include "edge/websocket_session.h"

#include <boost/asio/dispatch.hpp>
#include <boost/asio/post.hpp>

#include "absl/strings/str_cat.h"
#include "shared/log.h"

namespace edge {

namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
namespace net = boost::asio;

// ---------------------------------------------------------------- SessionSet

void SessionSet::Add(const std::shared_ptr<WebSocketSession>& session) {
  absl::MutexLock lock(&mu_);
  sessions_[session.get()] = session;
}

void SessionSet::Remove(const WebSocketSession* session) {
  absl::MutexLock lock(&mu_);
  sessions_.erase(session);
}

void SessionSet::CloseAll(uint16_t code) {
  std::vector<std::shared_ptr<WebSocketSession>> live;
  {
    absl::MutexLock lock(&mu_);
    for (auto& [ptr, weak] : sessions_) {
      if (auto s = weak.lock()) live.push_back(std::move(s));
    }
  }
  for (auto& s : live) s->CloseFromOutside(code);
}

size_t SessionSet::size() const {
  absl::MutexLock lock(&mu_);
  return sessions_.size();
}

// ---------------------------------------------------------- WebSocketSession

WebSocketSession::WebSocketSession(net::ip::tcp::socket&& socket,
                                   http::request<http::string_body> request,
                                   std::unique_ptr<Consumer> consumer, Scope scope,
                                   EdgeContext* context)
    : ws_(std::move(socket)),
      request_(std::move(request)),
      consumer_(std::move(consumer)),
      context_(context),
      peer_(scope.client),
      scope_(std::move(scope)),
      force_close_(ws_.get_executor()) {}

WebSocketSession::~WebSocketSession() {
  if (!channel_.empty() && !finished_) context_->layer->Unregister(channel_);
}

void WebSocketSession::Run() {
  channel_ = context_->layer->Register(weak_from_this());
  consumer_->Attach(this, context_->layer, std::move(scope_), channel_);
  context_->sessions.Add(shared_from_this());
  net::dispatch(ws_.get_executor(), [self = shared_from_this()] {
    self->connecting_hold_ = self;
    self->force_close_.expires_after(
        absl::ToChronoNanoseconds(self->context_->options.handshake_timeout));
    self->force_close_.async_wait([self](beast::error_code ec) {
      if (!ec && self->state_ == State::kConnecting) self->Reject();
    });
    self->consumer_->Connect();
  });
}

void WebSocketSession::CloseFromOutside(uint16_t code) {
  net::post(ws_.get_executor(), [self = shared_from_this(), code] { self->Close(code); });
}

void WebSocketSession::OnEvent(const LayerEventPtr& event) {
  net::post(ws_.get_executor(), [self = shared_from_this(), event] {
    if (self->state_ == State::kConnecting || self->state_ == State::kOpen) {
      self->consumer_->Dispatch(event);
    }
  });
}

std::function<void()> WebSocketSession::Bind(std::function<void()> fn) {
  return [weak = weak_from_this(), fn = std::move(fn)] {
    auto self = weak.lock();
    if (self == nullptr) return;
    net::post(self->ws_.get_executor(), [self, fn] {
      if (self->state_ != State::kClosed) fn();
    });
  };
}

void WebSocketSession::CountDrop(const char* reason) {
  context_->metrics->drops(reason).Increment();
}

void WebSocketSession::Accept() {
  if (state_ != State::kConnecting) return;
  state_ = State::kOpen;  // Frames sent from now on queue until the handshake is done.
  force_close_.cancel();
  std::shared_ptr<WebSocketSession> hold = std::move(connecting_hold_);
  websocket::stream_base::timeout timeouts;
  timeouts.handshake_timeout = absl::ToChronoNanoseconds(context_->options.handshake_timeout);
  timeouts.idle_timeout = absl::ToChronoNanoseconds(context_->options.idle_timeout);
  timeouts.keep_alive_pings = true;
  ws_.set_option(timeouts);
  ws_.read_message_max(context_->options.max_frame_bytes);
  ws_.auto_fragment(false);  // One frame per message: fewer headers and writes.
  ws_.set_option(websocket::stream_base::decorator(
      [](websocket::response_type& res) { res.set(http::field::server, "chat-edge"); }));
  writing_ = true;  // No frame goes out before the handshake completes.
  ws_.async_accept(request_,
                   beast::bind_front_handler(&WebSocketSession::OnAccept, shared_from_this()));
}

void WebSocketSession::OnAccept(beast::error_code ec) {
  writing_ = false;
  request_ = {};  // Its headers live on in the consumer's scope.
  if (ec) {
    Finish(kCloseAbnormal);
    return;
  }
  context_->metrics->connections().Increment();
  context_->metrics->connections_total().Increment();
  if (context_->options.log_connections) {
    chat::LogEvent("ws_open",
                   {{"path", consumer_->scope().path}, {"channel", channel_}, {"peer", peer_}});
  }
  DoRead();
  if (state_ == State::kClosing && queue_.empty()) {
    DoClose();
  } else {
    DoWrite();
  }
}

void WebSocketSession::Reject() {
  refusal_ = std::make_shared<http::response<http::string_body>>(http::status::forbidden,
                                                                 request_.version());
  refusal_->set(http::field::content_type, "text/plain");
  refusal_->body() = "refused by the consumer\n";
  refusal_->keep_alive(false);
  refusal_->prepare_payload();
  std::shared_ptr<WebSocketSession> hold = std::move(connecting_hold_);
  Finish(kCloseAbnormal);
  // The refusal gets five seconds to go out.
  force_close_.expires_after(std::chrono::seconds(5));
  force_close_.async_wait([self = shared_from_this()](beast::error_code ec) {
    beast::error_code ignored;
    if (!ec) self->ws_.next_layer().close(ignored);
  });
  http::async_write(ws_.next_layer(), *refusal_,
                    [self = shared_from_this()](beast::error_code, size_t) {
                      beast::error_code ignored;
                      self->ws_.next_layer().shutdown(net::ip::tcp::socket::shutdown_send, ignored);
                      self->force_close_.cancel();
                    });
}

void WebSocketSession::DoRead() {
  ws_.async_read(buffer_, beast::bind_front_handler(&WebSocketSession::OnRead, shared_from_this()));
}

void WebSocketSession::OnRead(beast::error_code ec, size_t bytes) {
  if (ec) {
    uint16_t code = kCloseAbnormal;
    if (ec == websocket::error::closed) {
      code = ws_.reason().code == websocket::close_code::none ? kCloseNoStatus : ws_.reason().code;
    } else if (ec == websocket::error::message_too_big) {
      code = kCloseTooBig;
      CountDrop("too_big");
      chat::LogEvent("ws_too_big", {{"channel", channel_}, {"peer", peer_}});
    }
    Finish(code);
    return;
  }
  context_->metrics->frames_in().Increment();
  std::string text = beast::buffers_to_string(buffer_.data());
  buffer_.consume(buffer_.size());
  if (state_ == State::kOpen) {
    if (ws_.got_binary()) {
      CountDrop("binary_frame");
      consumer_->ReceiveBinary(text);
    } else {
      consumer_->Receive(text);
    }
  }
  // Keep reading while closing: the peer's close frame completes the close.
  if (state_ != State::kClosed) DoRead();
}

void WebSocketSession::SendFrame(Frame text) {
  if (state_ != State::kOpen && state_ != State::kConnecting) return;
  if (queue_.size() >= context_->options.max_queue_frames ||
      queue_bytes_ + text->size() > context_->options.max_queue_bytes) {
    // The client stopped reading: it must not hold memory or slow the room.
    CountDrop("slow_reader");
    chat::LogEvent(
        "ws_slow_reader",
        {{"channel", channel_}, {"peer", peer_}, {"queued", absl::StrCat(queue_.size())}});
    DropQueued();
    Close(kCloseTryAgainLater);
    return;
  }
  queue_bytes_ += text->size();
  queue_.push_back(std::move(text));
  if (!writing_ && state_ == State::kOpen) DoWrite();
}

void WebSocketSession::DoWrite() {
  if (writing_ || queue_.empty()) return;
  writing_ = true;
  ws_.text(true);
  ws_.async_write(net::buffer(*queue_.front()),
                  beast::bind_front_handler(&WebSocketSession::OnWrite, shared_from_this()));
}

void WebSocketSession::OnWrite(beast::error_code ec, size_t bytes) {
  writing_ = false;
  if (ec) {
    Finish(kCloseAbnormal);
    return;
  }
  context_->metrics->frames_out().Increment();
  if (!queue_.empty()) {
    queue_bytes_ -= queue_.front()->size();
    queue_.pop_front();
  }
  if (state_ == State::kClosing && queue_.empty()) {
    DoClose();
    return;
  }
  DoWrite();
}

void WebSocketSession::Close(uint16_t code) {
  switch (state_) {
    case State::kConnecting:
      Reject();
      return;
    case State::kOpen:
      state_ = State::kClosing;
      close_code_ = code;
      // Whatever is queued would only delay these closes.
      if (code == kCloseTryAgainLater || code == kCloseGoingAway) DropQueued();
      // If the socket cannot even take the close frame, cut it.
      force_close_.expires_after(std::chrono::seconds(2));
      force_close_.async_wait([self = shared_from_this()](beast::error_code ec) {
        if (ec || self->state_ == State::kClosed) return;
        beast::error_code ignored;
        self->ws_.next_layer().shutdown(net::ip::tcp::socket::shutdown_both, ignored);
        self->ws_.next_layer().close(ignored);
      });
      if (!writing_) DoClose();
      return;
    case State::kClosing:
    case State::kClosed:
      return;
  }
}

void WebSocketSession::DoClose() {
  if (writing_) return;
  writing_ = true;  // A close counts as a write.
  ws_.async_close(websocket::close_reason(close_code_),
                  [self = shared_from_this()](beast::error_code ec) {
                    self->writing_ = false;
                    self->Finish(self->close_code_);
                  });
}

void WebSocketSession::Finish(uint16_t code) {
  if (finished_) return;
  finished_ = true;
  const bool was_open = state_ == State::kOpen || state_ == State::kClosing;
  state_ = State::kClosed;
  force_close_.cancel();
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

void WebSocketSession::DropQueued() {
  // The frame being written must outlive its write: it may be the last
  // reference to a frame shared with other sessions.
  const size_t keep = writing_ && !queue_.empty() ? 1 : 0;
  while (queue_.size() > keep) {
    queue_bytes_ -= queue_.back()->size();
    queue_.pop_back();
  }
}

}  // namespace edge

// WebSocketSession's handshake: the session from its upgrade request until
// the consumer accepts (Beast writes the 101) or refuses it (an HTTP status),
// with the user's connection counted first when a cap applies. The rest of
// the session (frames, writes, timers, the end) is in websocket_session.cc.
#include <boost/asio/dispatch.hpp>
#include <boost/asio/post.hpp>
#include <boost/beast/websocket.hpp>

#include "absl/strings/str_cat.h"
#include "edge/net/websocket_session.h"
#include "shared/log.h"
#include "shared/names.h"
#include "shared/reason.h"
#include "shared/utf8.h"

namespace edge {

namespace http = boost::beast::http;
namespace websocket = boost::beast::websocket;
namespace net = boost::asio;

struct WebSocketSession::Upgrade {
  http::request<http::string_body> request;
  Scope scope;  // Handed to the consumer in Run().
  std::unique_ptr<websocket::stream<net::ip::tcp::socket&>> handshake;
  http::response<http::string_body> refusal;
};

WebSocketSession::WebSocketSession(net::ip::tcp::socket&& socket, size_t loop,
                                   http::request<http::string_body> request,
                                   std::string early_bytes, std::unique_ptr<Consumer> consumer,
                                   Scope scope, std::shared_ptr<EdgeContext> context,
                                   Admission::Ticket ticket)
    : socket_(std::move(socket)),
      loop_(loop),
      upgrade_(new Upgrade{std::move(request), std::move(scope), nullptr, {}}),
      consumer_(std::move(consumer)),
      context_(std::move(context)),
      ticket_(std::move(ticket)),
      peer_(upgrade_->scope.client),
      timer_(socket_.get_executor()),
      parser_(context_->options.max_frame_bytes),
      carry_(std::move(early_bytes)),
      expires_(upgrade_->scope.user_expires) {}

WebSocketSession::~WebSocketSession() {
  SetCloseUnsent(false);
  if (!channel_.empty() && state_ != State::kClosed) context_->layer->Unregister(channel_);
}

void WebSocketSession::Run() {
  if (context_->options.socket_send_buffer > 0) {
    boost::system::error_code ignored;
    socket_.set_option(net::socket_base::send_buffer_size(context_->options.socket_send_buffer),
                       ignored);
  }
  const Scope& scope = upgrade_->scope;
  std::optional<UserConnection> user;
  if (scope.authenticated && !scope.user_id.empty()) {
    auto room = scope.url_route.find("room_name");
    // As groupsvc takes them, as presence clips them.
    auto clip = [](const std::string& text) { return chat::ClipUtf8(text, chat::kMaxUserField); };
    user = UserConnection{clip(scope.user_id), clip(scope.user),
                          clip(room == scope.url_route.end() ? "" : room->second)};
  }
  channel_ = context_->layer->Register(weak_from_this(), loop_);
  consumer_->Attach(this, context_->layer.get(), std::move(upgrade_->scope), channel_);
  context_->sessions.Add(shared_from_this());
  net::dispatch(socket_.get_executor(), [self = shared_from_this(), user = std::move(user)] {
    // Its wait holds the session while the consumer decides.
    self->ArmTimer(absl::ToChronoNanoseconds(self->context_->options.handshake_timeout));
    if (!user.has_value()) return self->consumer_->Connect();
    // Every signed-in connection is registered (operators find it); only a
    // cap makes the handshake wait for the count.
    const uint32_t cap = self->context_->options.max_connections_per_user;
    DoneCallback counted;
    if (cap > 0) {
      counted = [self](absl::Status s) {
        net::post(self->socket_.get_executor(), [self, s] { self->OnUserCounted(s); });
      };
    }
    self->context_->layer->ConnectUser(self->channel_, *user, cap, std::move(counted));
    if (cap == 0) self->consumer_->Connect();
  });
}

void WebSocketSession::OnUserCounted(const absl::Status& status) {
  if (state_ != State::kConnecting) return;
  if (chat::ReasonOf(status) == chat::kUserCapReason) {
    context_->metrics->refused("user_cap").Increment();
    chat::LogEvent(
        "ws_user_cap",
        {{"peer", peer_}, {"user", consumer_->scope().user_id}, {"reason", status.message()}});
    return Refuse(http::status::too_many_requests, absl::StrCat(status.message(), "\n"));
  }
  if (absl::IsResourceExhausted(status)) {
    // Not the user's doing: the link's queue or groupsvc's table of users is
    // full. Admitting uncounted would let the cap lapse exactly under load.
    context_->metrics->refused("busy").Increment();
    chat::LogEvent(
        "ws_busy",
        {{"peer", peer_}, {"user", consumer_->scope().user_id}, {"error", status.message()}});
    return Refuse(http::status::service_unavailable,
                  absl::StrCat("the chat service is too busy to admit this connection now (",
                               status.message(), "); try again shortly\n"));
  }
  if (absl::IsInvalidArgument(status)) {
    return Refuse(http::status::bad_request, absl::StrCat(status.message(), "\n"));
  }
  if (!status.ok()) {
    // Admitted uncounted: refusing everyone while groupsvc is away would
    // take the edge down with it. The link's replay counts it later.
    chat::LogEvent("ws_user_cap_unchecked",
                   {{"user", consumer_->scope().user_id}, {"error", status.message()}});
  }
  consumer_->Connect();
}

void WebSocketSession::Accept(const std::string& subprotocol) {
  if (state_ != State::kConnecting) return;
  state_ = State::kOpen;  // Frames sent from now on queue until the handshake is done.
  timer_.cancel();
  // Beast checks the upgrade request and writes the 101; it holds no timer,
  // so it can go as soon as that is written.
  upgrade_->handshake = std::make_unique<websocket::stream<net::ip::tcp::socket&>>(socket_);
  upgrade_->handshake->set_option(
      websocket::stream_base::decorator([subprotocol](websocket::response_type& res) {
        res.set(http::field::server, "chat-edge");
        if (!subprotocol.empty()) res.set(http::field::sec_websocket_protocol, subprotocol);
      }));
  upgrade_->handshake->async_accept(
      upgrade_->request,
      [self = shared_from_this()](boost::system::error_code ec) { self->OnAccept(ec); });
}

void WebSocketSession::OnAccept(boost::system::error_code ec) {
  writer_ = Writer::kIdle;
  upgrade_.reset();  // Its headers live on in the consumer's scope.
  if (ec) {
    Finish(kCloseAbnormal);
    Cut();
    return;
  }
  context_->metrics->connections().Increment();
  context_->metrics->connections_total().Increment();
  if (context_->options.log_connections) {
    chat::LogEvent("ws_open",
                   {{"path", consumer_->scope().path}, {"channel", channel_}, {"peer", peer_}});
  }
  socket_.non_blocking(true, ec);  // Reads are tried only once the socket is readable.
  if (state_ == State::kOpen) {
    ArmTimer(absl::ToChronoNanoseconds(context_->options.idle_timeout) / 2);
  }
  if (!carry_.empty() && !Consume(nullptr, 0)) return;
  DoRead();
  DoWrite();
}

void WebSocketSession::Refuse(http::status status, std::string body) {
  // For the attempt's page to read back (RecentRefusals).
  context_->refusals->Record(RecentRefusals::AttemptOf(consumer_->scope().query_string),
                             static_cast<int>(status), body);
  auto& refusal = upgrade_->refusal;
  refusal = http::response<http::string_body>(status, upgrade_->request.version());
  refusal.set(http::field::content_type, "text/plain");
  refusal.set(http::field::server, "chat-edge");
  refusal.body() = std::move(body);
  refusal.keep_alive(false);
  refusal.prepare_payload();
  Finish(kCloseAbnormal);
  ArmTimer(std::chrono::seconds(5));  // The refusal's time to go out.
  http::async_write(socket_, refusal,
                    [self = shared_from_this()](boost::system::error_code, size_t) {
                      boost::system::error_code ignored;
                      self->socket_.shutdown(net::ip::tcp::socket::shutdown_send, ignored);
                      self->timer_.cancel();
                    });
}

}  // namespace edge

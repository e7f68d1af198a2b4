// Consumer: one object per WebSocket connection, with the lifecycle of a
// Django Channels consumer.
//
//   Connect()     -> call Accept() (or Close(), which refuses the handshake with 403)
//   Receive(text) -> a text frame from the client
//   Disconnect(code)
//
// Layer events sent to this consumer's channel are dispatched by `type` to the
// handler registered with On() (Channels' "chat.message" -> chat_message).
// Groups joined with GroupAdd are left automatically after Disconnect.
//
//   class ChatConsumer : public Consumer {
//     ChatConsumer() { On("chat.message", [this](const LayerEvent& e) { ChatMessage(e); }); }
//     void Connect() override { GroupAdd("chat_lobby", [this](absl::Status) { Accept(); }); }
//   };
//
// Threading: every method, handler and callback runs on the connection's
// thread (its loop), one at a time, in order, as in Channels.
#ifndef CHAT_EDGE_CHANNELS_CONSUMER_H_
#define CHAT_EDGE_CHANNELS_CONSUMER_H_

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/time/time.h"
#include "edge/channels/close_codes.h"
#include "edge/channels/layer.h"
#include "edge/channels/layer_event.h"

namespace edge {

// What Channels calls the scope of a connection.
struct Scope {
  std::string path;
  std::string query_string;
  // The route's captured arguments, e.g. {"room_name": "lobby"}.
  absl::flat_hash_map<std::string, std::string> url_route;
  // Lower-case names, in the order received.
  std::vector<std::pair<std::string, std::string>> headers;
  std::string client;  // "ip:port"
  // The WebSocket subprotocols the client asked for (Sec-WebSocket-Protocol),
  // in its order; Accept(name) picks one.
  std::vector<std::string> subprotocols;
  // As Channels' AuthMiddlewareStack puts it: the display name, or
  // "AnonymousUser"; with a verified token (edge/auth/token.h) also its id,
  // its expiry and its claims as JSON.
  std::string user = "AnonymousUser";
  bool authenticated = false;
  std::string user_id;
  absl::Time user_expires = absl::InfiniteFuture();
  std::string user_claims;
};

// The connection behind a consumer (a WebSocket session), as the consumer sees it.
class Connection {
 public:
  virtual ~Connection() = default;
  // `subprotocol`: one of the scope's subprotocols, or empty for none.
  virtual void Accept(const std::string& subprotocol) = 0;
  virtual void Close(uint16_t code) = 0;
  virtual void SendFrame(Frame text) = 0;
  // `fn`, made to run on this connection's thread, and not at all once the
  // connection is gone.
  virtual std::function<void()> Bind(std::function<void()> fn) = 0;
  // Counts a dropped event or frame by reason (metrics).
  virtual void CountDrop(const char* reason) = 0;
};

class Consumer {
 public:
  virtual ~Consumer() = default;

  virtual void Connect() { Accept(); }
  virtual void Receive(const std::string& text) {}
  // Binary frames: refused with 1003 unless a consumer wants them.
  virtual void ReceiveBinary(const std::string& bytes) { Close(kCloseUnsupportedData); }
  virtual void Disconnect(uint16_t code) {}
  // The server is closing the connection with `code` while it can still send:
  // an operator's close (groupsvc's Disconnect or RemoveFromGroup, with their
  // `reason`) or the edge's own (shutdown, an expired token, a slow or faulty
  // client; `reason` empty, see CloseExplained). Returns a last text frame for
  // the client, sent just before the close frame, or empty for none.
  virtual std::string Farewell(uint16_t code, const std::string& reason) { return ""; }

  // Runs the handler for event.type(); an event with no handler is dropped and
  // counted (Channels would raise and kill the consumer; one bad sender must
  // not be able to close a whole room).
  void Dispatch(const LayerEventPtr& event);

  // Called by the session before Connect and after Disconnect.
  void Attach(Connection* connection, Layer* layer, Scope scope, std::string channel);
  void LeaveGroups();

  const Scope& scope() const { return scope_; }
  const std::string& channel_name() const { return channel_; }

 protected:
  void Accept(const std::string& subprotocol = "") { connection_->Accept(subprotocol); }
  void Close(uint16_t code = kCloseNormal) { connection_->Close(code); }
  void Send(std::string text) {
    connection_->SendFrame(std::make_shared<const std::string>(std::move(text)));
  }
  void Send(Frame frame) { connection_->SendFrame(std::move(frame)); }

  using Done = std::function<void(absl::Status)>;
  void GroupAdd(const std::string& group, Done done = nullptr);
  void GroupDiscard(const std::string& group);
  void GroupSend(const std::string& group, LayerEventPtr event, Done done = nullptr);
  void SendTo(const std::string& channel, LayerEventPtr event, Done done = nullptr);
  // Who this connection is, for the groups it joins after this (presence).
  void SetUser(ChannelUser user) { layer_->SetUser(channel_, std::move(user)); }
  // The layer's history and presence of a group; `done` on this thread.
  void GetHistory(const HistoryQuery& query, HistoryCallback done) {
    layer_->History(query, OnLoop(std::move(done)));
  }
  void GetPresence(const std::string& group, PresenceCallback done) {
    layer_->Presence(group, OnLoop(std::move(done)));
  }

  void CountDrop(const char* reason) { connection_->CountDrop(reason); }

  void On(std::string type, std::function<void(const LayerEvent&)> handler) {
    handlers_[std::move(type)] = std::move(handler);
  }

 private:
  // `done`, run on the connection's thread if the connection still exists.
  DoneCallback OnLoop(Done done);
  template <typename T>
  std::function<void(T)> OnLoop(std::function<void(T)> done) {
    auto value = std::make_shared<std::optional<T>>();
    std::function<void()> run =
        connection_->Bind([done = std::move(done), value] { done(std::move(**value)); });
    return [run = std::move(run), value](T v) {
      value->emplace(std::move(v));
      run();
    };
  }

  Connection* connection_ = nullptr;
  Layer* layer_ = nullptr;
  Scope scope_;
  std::string channel_;
  absl::flat_hash_set<std::string> groups_;
  absl::flat_hash_map<std::string, std::function<void(const LayerEvent&)>> handlers_;
};

}  // namespace edge

#endif  // CHAT_EDGE_CHANNELS_CONSUMER_H_

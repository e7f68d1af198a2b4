// ChatConsumer: the tutorial's chat room. Joins the group "chat_<room_name>",
// relays {"message": "..."} from its client to the group as a chat.message
// event, and sends every chat.message of the group back as {"message": "..."}.
//
// Bad input gets an error frame and changes nothing for the room:
//   {"error": "bad_frame", "detail": "..."}                 not JSON, or no string "message"
//   {"error": "not_delivered", "detail": "...", "undelivered": "..."}  the layer refused it
//   {"error": "unconfirmed", ...}  the link was lost after it went out: it may have arrived
// (no "message" key, so pages that print every frame's "message" print nothing).
//
// Versions: a client that asks for the WebSocket subprotocol "chat.v2" gets
// typed frames, each message with its author and the server's time:
//   {"type": "message", "message": "hi", "user": {"id": "u1", "name": "Ann"},
//    "ts": "2026-12-02T20:15:00.123Z", "offset": 7, "epoch": "k3m9x2qa"}
//   ("user": {"anonymous": true} without a token; offset and epoch: the room's
//   history position in groupsvc, absent with the in-process layer)
// and error frames as above; any other client gets the tutorial's
// {"message": "..."} only, so the tutorial's own room.html chats unchanged.
#ifndef CHAT_EDGE_CHAT_CHAT_CONSUMER_H_
#define CHAT_EDGE_CHAT_CHAT_CONSUMER_H_

#include <optional>
#include <string>

#include "edge/channels/consumer.h"

namespace edge {

// The "message" string of a client frame, or the error frame to answer with.
struct ClientMessage {
  std::optional<std::string> message;
  std::string error_frame;
};
ClientMessage ParseClientMessage(const std::string& text);
std::string ErrorFrame(const std::string& code, const std::string& detail,
                       const std::string* undelivered = nullptr);

// A consumer of the chat protocol: takes the "message" of a client frame, or
// answers a bad frame with its error frame and counts it.
class ChatProtocolConsumer : public Consumer {
 protected:
  std::optional<std::string> TakeMessage(const std::string& text);
};

class ChatConsumer : public ChatProtocolConsumer {
 public:
  ChatConsumer();
  // The group of a room: "chat_<room_name>".
  static std::string GroupFor(const std::string& room_name) { return "chat_" + room_name; }
  static constexpr char kProtocolV2[] = "chat.v2";
  void Connect() override;
  void Receive(const std::string& text) override;

 private:
  void ChatMessage(const LayerEvent& event);

  std::string group_;
  bool v2_ = false;
};

// The tutorial's first step: every message comes straight back to its sender.
class EchoConsumer : public ChatProtocolConsumer {
 public:
  void Receive(const std::string& text) override;
};

}  // namespace edge

#endif  // CHAT_EDGE_CHAT_CHAT_CONSUMER_H_

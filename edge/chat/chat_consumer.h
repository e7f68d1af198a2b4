// ChatConsumer: the tutorial's chat room. Joins the group "chat_<room_name>",
// relays {"message": "..."} from its client to the group as a chat.message
// event, and sends every chat.message of the group back as {"message": "..."}.
//
// Bad input gets an error frame and changes nothing for the room:
//   {"error": "bad_frame", "detail": "..."}                 not JSON, or no string "message"
//   {"error": "not_delivered", "detail": "...", "undelivered": "..."}  the layer refused it
//   {"error": "unconfirmed", ...}  the link was lost after it went out: it may have arrived
// A tutorial (v1) client's error frames also carry a "message" that says what
// happened to which message, since the tutorial's room.html prints every
// frame's "message" (and would print "undefined" without one):
//   [not delivered] "hi": the chat service is unavailable
//   [maybe not delivered] "hi": the link to the chat service broke ...
//   [not understood] expected a JSON object with a string "message"
// A chat.v2 client's error frames have no "message": it reads "error".
//
// Versions: a client that asks for the WebSocket subprotocol "chat.v2" gets
// typed frames, each message with its author and the server's time:
//   {"type": "message", "message": "hi", "user": {"id": "u1", "name": "Ann"},
//    "ts": "2026-12-02T20:15:00.123Z", "offset": 7, "epoch": "k3m9x2qa"}
//   ("user": {"anonymous": true} without a token; offset and epoch: the room's
//   history position in groupsvc, absent with the in-process layer)
// and error frames as above; any other client gets the tutorial's
// {"message": "..."} only, so the tutorial's own room.html chats unchanged.
//
// A v2 client also gets, once it is in the room (with groupsvc; the
// in-process layer keeps neither history nor presence):
//   {"type": "presence", "members": [{"id": "u1", "name": "Ann"}, ...]}
//       who is in the room now (signed-in users; two tabs are one member),
//   {"type": "presence", "joined": {"id": "u2", "name": "Bo"}}
//   {"type": "presence", "left": {"id": "u2", "name": "Bo"}}
//       as they come and go (a leave only once the user's last connection has
//       been gone for groupsvc's --presence_debounce),
// and the room's history: connecting with ?since=<offset>&epoch=<epoch> (the
// last message frame it saw), exactly the messages after it, in order and
// before any new one, then
//   {"type": "recovered", "recovered": true, "missed": 3, "offset": 12, "epoch": "k3m9x2qa"}
// or, when groupsvc no longer has all of them (restarted, or too many),
//   {"type": "recovered", "recovered": false, "missed": 0, ...} after the latest
//   --join_history messages; without `since`, a new joiner gets the latest
//   --join_history messages, then
//   {"type": "joined", "history": 5, "offset": 12, "epoch": "k3m9x2qa"}
// ("offset": 0 when the room has no messages yet; "epoch": "" where there is
// no history: the in-process layer, groupsvc --history_size=0).
#ifndef CHAT_EDGE_CHAT_CHAT_CONSUMER_H_
#define CHAT_EDGE_CHAT_CHAT_CONSUMER_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "edge/channels/consumer.h"

namespace edge {

// The "message" string of a client frame, or the error frame to answer with.
struct ClientMessage {
  std::optional<std::string> message;
  std::string error_detail;  // Why it is not one, when it is not.
};
ClientMessage ParseClientMessage(const std::string& text);
// `readable`: a "message" line for the tutorial's page too (see above).
std::string ErrorFrame(const std::string& code, const std::string& detail,
                       const std::string* undelivered = nullptr, bool readable = false);

// A consumer of the chat protocol: takes the "message" of a client frame, or
// answers a bad frame with its error frame and counts it.
class ChatProtocolConsumer : public Consumer {
 public:
  // Why, as an error frame ("disconnected") before the close: the tutorial's
  // page prints "[disconnected] <why>", as it shows no close. An operator's
  // reason goes to every client; the edge's own closes only to v1 clients (a
  // v2 page reads the close frame's code and reason).
  std::string Farewell(uint16_t code, const std::string& reason) override;

 protected:
  std::optional<std::string> TakeMessage(const std::string& text);
  // An error frame for this client: readable by the tutorial's page unless
  // the client speaks chat.v2.
  std::string Error(const std::string& code, const std::string& detail,
                    const std::string* undelivered = nullptr) const {
    return ErrorFrame(code, detail, undelivered, !typed_errors_);
  }
  // Set by a consumer whose client reads typed frames (chat.v2).
  bool typed_errors_ = false;
};

struct ChatOptions {
  // The latest messages a new v2 client gets (or one that could not recover).
  uint32_t join_history = 20;
  // Bytes of missed messages one reconnect recovers at most (past it:
  // recovered false), and live messages held meanwhile at most (past it: 1013).
  size_t recover_bytes = 2 << 20;
  size_t max_held = 1024;
};

class ChatConsumer : public ChatProtocolConsumer {
 public:
  explicit ChatConsumer(ChatOptions options = {});
  // The group of a room: "chat_<room_name>".
  static std::string GroupFor(const std::string& room_name) { return "chat_" + room_name; }
  static constexpr char kProtocolV2[] = "chat.v2";
  void Connect() override;
  void Receive(const std::string& text) override;

 private:
  void ChatMessage(const LayerEvent& event);
  void PresenceChange(const LayerEvent& event, const char* change);
  // Sends a message frame unless its offset was sent already or it has no
  // "message" (false).
  bool SendMessage(const LayerEvent& event);
  bool SendShown(Frame frame);

  // A v2 client's first moments in the room: the members, and the history
  // (recovery from `since_`, or the latest), while live messages are held.
  void StartSync();
  void AskLatest();
  void AskHistory(HistoryQuery query);
  void OnHistory(const HistoryQuery& query, absl::StatusOr<HistoryAnswer> answer);
  // Sends the closing frame ("joined" or "recovered"), then what was held.
  void FinishSync(std::string frame);
  std::string SyncFrame(bool recovered, uint64_t offset, const std::string& epoch) const;

  const ChatOptions options_;
  std::string group_;
  bool v2_ = false;
  // kSyncing: the history is being fetched; live messages wait in held_.
  enum class Sync { kLive, kSyncing };
  Sync sync_ = Sync::kLive;
  std::vector<LayerEventPtr> held_;
  // The client's position (?since=&epoch=), when it asked to recover; a
  // malformed one is recovered false.
  bool recovering_ = false;
  std::optional<uint64_t> since_;
  std::string since_epoch_;
  size_t missed_ = 0;   // Recovered messages sent.
  size_t history_ = 0;  // The latest messages sent (a join, or no recovery).
  size_t recovered_bytes_ = 0;
  std::string not_recovered_;  // Why, for the recovered-false frame.
  // The latest offset sent under sent_epoch_: a message at or before it (a
  // live one the history also held) is not sent twice.
  uint64_t sent_offset_ = 0;
  std::string sent_epoch_;
};

// The tutorial's first step: every message comes straight back to its sender.
class EchoConsumer : public ChatProtocolConsumer {
 public:
  void Receive(const std::string& text) override;
};

}  // namespace edge

#endif  // CHAT_EDGE_CHAT_CHAT_CONSUMER_H_

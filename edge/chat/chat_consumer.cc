#include "edge/chat/chat_consumer.h"

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "shared/names.h"

namespace edge {
namespace {

// RFC 3339, UTC, milliseconds: "2026-12-02T20:15:00.123Z".
std::string NowText() {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", absl::Now(), absl::UTCTimeZone());
}

}  // namespace

std::string ErrorFrame(const std::string& code, const std::string& detail,
                       const std::string* undelivered) {
  boost::json::object o;
  o["error"] = code;
  o["detail"] = detail;
  if (undelivered != nullptr) o["undelivered"] = *undelivered;
  return boost::json::serialize(o);
}

ClientMessage ParseClientMessage(const std::string& text) {
  boost::system::error_code ec;
  boost::json::value v = boost::json::parse(text, ec);
  if (ec) return {std::nullopt, ErrorFrame("bad_frame", "the frame is not JSON")};
  const boost::json::object* o = v.if_object();
  const boost::json::value* m = o == nullptr ? nullptr : o->if_contains("message");
  if (m == nullptr || !m->is_string()) {
    return {std::nullopt,
            ErrorFrame("bad_frame", "expected a JSON object with a string \"message\"")};
  }
  return {std::string(m->as_string()), ""};
}

std::optional<std::string> ChatProtocolConsumer::TakeMessage(const std::string& text) {
  ClientMessage parsed = ParseClientMessage(text);
  if (!parsed.message.has_value()) {
    CountDrop("bad_frame");
    Send(std::move(parsed.error_frame));
  }
  return std::move(parsed.message);
}

ChatConsumer::ChatConsumer() {
  On("chat.message", [this](const LayerEvent& e) { ChatMessage(e); });
}

void ChatConsumer::Connect() {
  group_ = GroupFor(scope().url_route.at("room_name"));
  if (!chat::ValidateGroupName(group_).ok()) {
    Close();  // Before Accept: the handshake is refused.
    return;
  }
  for (const std::string& p : scope().subprotocols) v2_ = v2_ || p == kProtocolV2;
  // Accept once the membership is registered, so the first message sent to the
  // room after the handshake reaches this client.
  GroupAdd(group_, [this](absl::Status s) {
    if (s.ok()) {
      Accept(v2_ ? kProtocolV2 : "");
    } else {
      Close(kCloseInternal);
    }
  });
}

void ChatConsumer::Receive(const std::string& text) {
  std::optional<std::string> message = TakeMessage(text);
  if (!message.has_value()) return;
  boost::json::object fields;
  fields["message"] = *message;
  // The author as the scope knows it, and when the room heard it: v2 clients show both.
  boost::json::object user;
  if (scope().authenticated) {
    user["id"] = scope().user_id;
    user["name"] = scope().user;
  } else {
    user["anonymous"] = true;
  }
  fields["user"] = std::move(user);
  fields["ts"] = NowText();
  GroupSend(
      group_, LayerEvent::Make("chat.message", std::move(fields)),
      [this, message = std::move(*message)](absl::Status s) {
        if (s.ok()) return;
        if (absl::IsUnknown(s)) {
          CountDrop("unconfirmed");
          Send(ErrorFrame("unconfirmed",
                          absl::StrCat("your message may not have been delivered: ", s.message()),
                          &message));
          return;
        }
        CountDrop("not_delivered");
        Send(ErrorFrame("not_delivered",
                        absl::StrCat("your message was not delivered: ", s.message()), &message));
      });
}

void ChatConsumer::ChatMessage(const LayerEvent& event) {
  // Built once per event and version, shared by every local member of the room.
  if (!v2_) {
    Send(event.Memo("chat.frame", [&event] {
      boost::json::object out;
      auto it = event.fields().find("message");
      out["message"] = it == event.fields().end() ? boost::json::value() : it->value();
      return boost::json::serialize(out);
    }));
    return;
  }
  Send(event.Memo("chat.frame.v2", [&event] {
    const boost::json::object& in = event.fields();
    boost::json::object out;
    out["type"] = "message";
    auto message = in.find("message");
    out["message"] = message == in.end() ? boost::json::value() : message->value();
    // The author: only the two strings an edge puts there (see Receive);
    // anything else, as from a sender that is not an edge (grpcurl, a Django
    // view), is shown as anonymous, with this edge's time.
    boost::json::object author{{"anonymous", true}};
    auto user = in.find("user");
    if (user != in.end() && user->value().is_object()) {
      const boost::json::object& u = user->value().get_object();
      const boost::json::value* id = u.if_contains("id");
      const boost::json::value* name = u.if_contains("name");
      if (id != nullptr && id->is_string() && name != nullptr && name->is_string()) {
        author = boost::json::object{{"id", *id}, {"name", *name}};
      }
    }
    out["user"] = std::move(author);
    // The room's offset and epoch (groupsvc's history): what a page will
    // recover from after a reconnect.
    if (event.offset() > 0) {
      out["offset"] = event.offset();
      out["epoch"] = event.epoch();
    }
    auto ts = in.find("ts");
    out["ts"] =
        ts != in.end() && ts->value().is_string() ? ts->value() : boost::json::value(NowText());
    return boost::json::serialize(out);
  }));
}

void EchoConsumer::Receive(const std::string& text) {
  std::optional<std::string> message = TakeMessage(text);
  if (!message.has_value()) return;
  boost::json::object out;
  out["message"] = *message;
  Send(boost::json::serialize(out));
}

}  // namespace edge

#include "edge/chat/chat_consumer.h"

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/url/parse.hpp>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "shared/names.h"
#include "shared/utf8.h"

namespace edge {
namespace {

// RFC 3339, UTC, milliseconds: "2026-12-02T20:15:00.123Z".
std::string NowText() {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", absl::Now(), absl::UTCTimeZone());
}

// The longest epoch a client may name (groupsvc's are 8 characters).
constexpr size_t kMaxEpoch = 64;

// An id or name as text: a string, text sent as bytes (TextValue), or an
// integer id (a Django user's pk); else nothing.
std::optional<boost::json::string> UserText(const boost::json::object& user, const char* key) {
  const boost::json::value* v = user.if_contains(key);
  if (v == nullptr) return std::nullopt;
  if (v->is_int64()) return boost::json::string(std::to_string(v->as_int64()));
  if (v->is_uint64()) return boost::json::string(std::to_string(v->as_uint64()));
  boost::json::value text = TextValue(*v);
  if (!text.is_string()) return std::nullopt;
  return std::move(text.as_string());
}

// An event's "user" as v2 frames show it: the id and name an edge (or
// groupsvc's presence, or a Django view) puts there; anything else, as from a
// sender that names nobody (grpcurl), is anonymous.
boost::json::object Author(const boost::json::object& fields) {
  const boost::json::value* user = fields.if_contains("user");
  const boost::json::object* u = user == nullptr ? nullptr : user->if_object();
  if (u == nullptr) return {{"anonymous", true}};
  std::optional<boost::json::string> id = UserText(*u, "id");
  std::optional<boost::json::string> name = UserText(*u, "name");
  if (!id.has_value() || !name.has_value()) return {{"anonymous", true}};
  return {{"id", std::move(*id)}, {"name", std::move(*name)}};
}

// Ids and names as groupsvc takes them (at most 256 bytes), cut at a
// character boundary.
std::string Clip(const std::string& text) { return chat::ClipUtf8(text, chat::kMaxUserField); }

// The room's history holds whatever was sent to the group; only chat
// messages are the client's.
bool IsChat(const LayerEvent& event) { return event.type() == "chat.message"; }

}  // namespace

namespace {

// The line the tutorial's page prints for an error frame.
std::string ReadableLine(const std::string& code, const std::string& detail,
                         const std::string* undelivered) {
  const char* what = code == "not_delivered"  ? "[not delivered]"
                     : code == "unconfirmed"  ? "[maybe not delivered]"
                     : code == "bad_frame"    ? "[not understood]"
                     : code == "disconnected" ? "[disconnected]"
                                              : "[error]";
  if (undelivered == nullptr) return absl::StrCat(what, " ", detail);
  return absl::StrCat(what, " \"", *undelivered, "\": ", detail);
}

}  // namespace

std::string ErrorFrame(const std::string& code, const std::string& detail,
                       const std::string* undelivered, bool readable) {
  boost::json::object o;
  o["error"] = code;
  o["detail"] = detail;
  if (undelivered != nullptr) o["undelivered"] = *undelivered;
  if (readable) o["message"] = ReadableLine(code, detail, undelivered);
  return boost::json::serialize(o);
}

ClientMessage ParseClientMessage(const std::string& text) {
  boost::system::error_code ec;
  boost::json::value v = boost::json::parse(text, ec);
  if (ec) return {std::nullopt, "the frame is not JSON"};
  const boost::json::object* o = v.if_object();
  const boost::json::value* m = o == nullptr ? nullptr : o->if_contains("message");
  if (m == nullptr || !m->is_string()) {
    return {std::nullopt, "expected a JSON object with a string \"message\""};
  }
  return {std::string(m->as_string()), ""};
}

std::string ChatProtocolConsumer::Farewell(uint16_t code, const std::string& reason) {
  if (!reason.empty()) return Error("disconnected", reason);
  const std::string why = CloseExplained(code);
  if (why.empty() || typed_errors_) return "";
  return Error("disconnected", why);
}

std::optional<std::string> ChatProtocolConsumer::TakeMessage(const std::string& text) {
  ClientMessage parsed = ParseClientMessage(text);
  if (!parsed.message.has_value()) {
    CountDrop("bad_frame");
    Send(Error("bad_frame", parsed.error_detail));
  }
  return std::move(parsed.message);
}

ChatConsumer::ChatConsumer(ChatOptions options) : options_(options) {
  On("chat.message", [this](const LayerEvent& e) { ChatMessage(e); });
  On("presence.join", [this](const LayerEvent& e) { PresenceChange(e, "joined"); });
  On("presence.leave", [this](const LayerEvent& e) { PresenceChange(e, "left"); });
}

void ChatConsumer::Connect() {
  group_ = GroupFor(scope().url_route.at("room_name"));
  if (!chat::ValidateGroupName(group_).ok()) {
    Close();  // Before Accept: the handshake is refused.
    return;
  }
  for (const std::string& p : scope().subprotocols) v2_ = v2_ || p == kProtocolV2;
  typed_errors_ = v2_;
  if (v2_) {
    // ?since=<offset>&epoch=<epoch>: the last message the client saw.
    const std::string ref = "?" + scope().query_string;  // The view below points into it.
    auto query = boost::urls::parse_relative_ref(ref);
    if (query.has_value()) {
      auto since = query->params().find("since");
      if (since != query->params().end()) {
        recovering_ = true;
        auto epoch = query->params().find("epoch");
        uint64_t offset = 0;
        if (absl::SimpleAtoi(std::string((*since).value), &offset) &&
            epoch != query->params().end() && (*epoch).value.size() <= kMaxEpoch) {
          since_ = offset;
          since_epoch_ = std::string((*epoch).value);
          sent_offset_ = offset;
          sent_epoch_ = since_epoch_;
        }
      }
    }
  }
  // Presence: a signed-in user is listed in the room; a v2 client hears who
  // comes and goes.
  if (scope().authenticated || v2_) {
    SetUser(ChannelUser{scope().authenticated ? Clip(scope().user_id) : "",
                        scope().authenticated ? Clip(scope().user) : "", v2_});
  }
  // A v2 client's first moments: live messages wait for the history, from
  // the first one delivered (which may come before the join's answer).
  if (v2_) sync_ = Sync::kSyncing;
  // Accept once the membership is registered, so the first message sent to the
  // room after the handshake reaches this client.
  GroupAdd(group_, [this](absl::Status s) {
    if (!s.ok()) {
      Close(kCloseInternal);
      return;
    }
    Accept(v2_ ? kProtocolV2 : "");
    if (v2_) StartSync();
  });
}

void ChatConsumer::StartSync() {
  GetPresence(group_, [this](absl::StatusOr<std::vector<PresenceEntry>> members) {
    if (!members.ok()) return;  // No presence here (the in-process layer), or groupsvc is away.
    boost::json::array list;
    for (const PresenceEntry& m : *members) list.push_back({{"id", m.id}, {"name", m.name}});
    Send(boost::json::serialize(boost::json::object{{"type", "presence"}, {"members", list}}));
  });
  // Asked after the group_add on the same stream: the history covers what
  // came before the join, deliveries what comes after it.
  if (!since_.has_value()) {
    if (recovering_) not_recovered_ = "since must be an offset, with the epoch it was seen under";
    AskLatest();
    return;
  }
  HistoryQuery query{group_, *since_, since_epoch_};
  query.max_bytes = static_cast<uint32_t>(options_.recover_bytes);
  AskHistory(std::move(query));
}

void ChatConsumer::AskLatest() {
  HistoryQuery query{group_};
  query.latest = true;
  query.limit = std::max<uint32_t>(1, options_.join_history);
  // With what may be held meanwhile, well within the client's queue.
  query.max_bytes = static_cast<uint32_t>(options_.recover_bytes / 2);
  AskHistory(std::move(query));
}

void ChatConsumer::AskHistory(HistoryQuery query) {
  GetHistory(query, [this, query](absl::StatusOr<HistoryAnswer> answer) {
    OnHistory(query, std::move(answer));
  });
}

void ChatConsumer::OnHistory(const HistoryQuery& query, absl::StatusOr<HistoryAnswer> answer) {
  if (!answer.ok()) {
    if (!absl::IsUnimplemented(answer.status())) CountDrop("history_unavailable");
    not_recovered_ = std::string(answer.status().message());
    // The client's position stays what it was, for its next try.
    FinishSync(SyncFrame(false, sent_offset_, sent_epoch_));
    return;
  }
  if (query.latest) {
    if (options_.join_history > 0) {
      for (const LayerEventPtr& e : answer->events) {
        if (IsChat(*e)) history_ += SendMessage(*e) ? 1 : 0;
      }
    }
    FinishSync(SyncFrame(false, answer->latest, answer->epoch));
    return;
  }
  if (!answer->recovered) {
    // Another epoch, or the gap is no longer all there: the latest instead.
    not_recovered_ = answer->epoch != query.epoch
                         ? "the room's history was lost (the chat service restarted or moved it)"
                         : "the room's history no longer holds every message since then";
    if (answer->epoch != query.epoch || query.since > answer->latest) {
      // Not a position in this numbering: nothing of it counts as sent.
      sent_offset_ = 0;
      sent_epoch_.clear();
    }
    AskLatest();
    return;
  }
  // What the client missed, page by page within the byte budget.
  for (const LayerEventPtr& e : answer->events) {
    recovered_bytes_ += e->json().size();
    if (IsChat(*e)) missed_ += SendMessage(*e) ? 1 : 0;
  }
  const uint64_t last = answer->events.empty() ? query.since : answer->events.back()->offset();
  if (last >= answer->latest) {
    FinishSync(SyncFrame(true, answer->latest, answer->epoch));
    return;
  }
  if (recovered_bytes_ >= options_.recover_bytes) {
    not_recovered_ = "more was missed than one reconnect recovers";
    AskLatest();
    return;
  }
  HistoryQuery next = query;
  next.since = last;
  next.max_bytes = static_cast<uint32_t>(options_.recover_bytes - recovered_bytes_);
  AskHistory(std::move(next));
}

std::string ChatConsumer::SyncFrame(bool recovered, uint64_t offset,
                                    const std::string& epoch) const {
  boost::json::object out;
  if (recovering_) {
    out["type"] = "recovered";
    out["recovered"] = recovered;
    out["missed"] = missed_;
    if (!recovered) out["detail"] = not_recovered_;
  } else {
    out["type"] = "joined";
    out["history"] = history_;
  }
  out["offset"] = offset;
  out["epoch"] = epoch;
  return boost::json::serialize(out);
}

void ChatConsumer::FinishSync(std::string frame) {
  Send(std::move(frame));
  sync_ = Sync::kLive;
  std::vector<LayerEventPtr> held;
  held.swap(held_);
  for (const LayerEventPtr& e : held) SendMessage(*e);
}

void ChatConsumer::PresenceChange(const LayerEvent& event, const char* change) {
  if (!v2_) return;
  Send(boost::json::serialize(
      boost::json::object{{"type", "presence"}, {change, Author(event.fields())}}));
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
  GroupSend(group_, LayerEvent::Make("chat.message", std::move(fields)),
            [this, message = std::move(*message)](absl::Status s) {
              if (s.ok()) return;
              if (absl::IsUnknown(s)) {
                CountDrop("unconfirmed");
                Send(Error("unconfirmed",
                           absl::StrCat("your message may not have been delivered: ", s.message()),
                           &message));
                return;
              }
              CountDrop("not_delivered");
              Send(Error("not_delivered",
                         absl::StrCat("your message was not delivered: ", s.message()), &message));
            });
}

void ChatConsumer::ChatMessage(const LayerEvent& event) {
  if (sync_ == Sync::kSyncing) {
    // After the history: held (bounded; a client this far behind reconnects
    // and recovers).
    if (held_.size() >= options_.max_held) {
      CountDrop("sync_overflow");
      Close(kCloseTryAgainLater);
      return;
    }
    held_.push_back(event.shared_from_this());
    return;
  }
  SendMessage(event);
}

bool ChatConsumer::SendMessage(const LayerEvent& event) {
  // Built once per event and version, shared by every local member of the room.
  if (!v2_) {
    return SendShown(event.Memo("chat.frame", [&event] {
      auto it = event.fields().find("message");
      if (it == event.fields().end() || it->value().is_null()) return std::string();
      boost::json::object out;
      out["message"] = TextValue(it->value());
      return boost::json::serialize(out);
    }));
  }
  if (event.offset() > 0) {
    // groupsvc hands a room's events to each edge in offset order, so one
    // at or before the latest sent is one the history sent already.
    if (event.epoch() == sent_epoch_ && event.offset() <= sent_offset_) return false;
    sent_epoch_ = event.epoch();
    sent_offset_ = event.offset();
  }
  return SendShown(event.Memo("chat.frame.v2", [&event] {
    const boost::json::object& in = event.fields();
    auto message = in.find("message");
    if (message == in.end() || message->value().is_null()) return std::string();
    boost::json::object out;
    out["type"] = "message";
    out["message"] = TextValue(message->value());
    // The author (see Receive); a sender that is not an edge gets this
    // edge's time too.
    out["user"] = Author(in);
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

bool ChatConsumer::SendShown(Frame frame) {
  if (frame->empty()) {
    // A chat.message without a message has nothing to show (the tutorial's
    // consumer would raise KeyError on it): dropped, counted.
    CountDrop("no_message");
    return false;
  }
  Send(std::move(frame));
  return true;
}

void EchoConsumer::Receive(const std::string& text) {
  std::optional<std::string> message = TakeMessage(text);
  if (!message.has_value()) return;
  boost::json::object out;
  out["message"] = *message;
  Send(boost::json::serialize(out));
}

}  // namespace edge

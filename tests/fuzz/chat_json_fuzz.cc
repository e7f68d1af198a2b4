// chat_json_fuzz: the chat protocol's JSON (edge/chat/chat_consumer.h) on any text
// a client may send, and on any event JSON that may arrive from the layer.
//
// Checks:
//   - edge::ParseClientMessage gives either a message and no error frame, or
//     no message and a non-empty error frame that is itself a JSON object
//     {"error": "bad_frame", "detail": "..."} without a "message" key;
//   - a message is the string "message" of a JSON object in the text;
//   - the frames built around a message are valid JSON that give it back:
//     the echo/room frame {"message": ...} and the not_delivered error frame
//     with it as "undelivered";
//   - edge::LayerEvent::FromWire on the same text (an event from groupsvc)
//     never crashes, and its "message" field is the one JSON parsing gives.
// A crash means a client frame can make the edge answer with something that
// is not the protocol's JSON, lose or alter a message, or misbehave in memory.
#include <boost/json.hpp>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>

#include "edge/channels/layer_event.h"
#include "edge/chat/chat_consumer.h"
#include "tests/fuzz/fuzz_check.h"

namespace {

namespace json = boost::json;

// The object `text` parses to, if it is one.
std::optional<json::object> ParseObject(const std::string& text) {
  boost::system::error_code ec;
  json::value v = json::parse(text, ec);
  if (ec || !v.is_object()) return std::nullopt;
  return std::move(v.as_object());
}

// A chat.v2 client's error frame has no "message"; a tutorial client's has
// one (its page prints every frame's "message") naming what was not delivered.
void CheckErrorFrame(const std::string& frame, const char* code, const std::string* undelivered,
                     bool readable) {
  FUZZ_CHECK(!frame.empty());
  std::optional<json::object> o = ParseObject(frame);
  FUZZ_CHECK(o.has_value());
  const json::value* line = o->if_contains("message");
  FUZZ_CHECK(readable == (line != nullptr));
  if (readable) {
    FUZZ_CHECK(line->is_string());
    const std::string text(line->as_string());
    FUZZ_CHECK(text.rfind("[", 0) == 0);
    if (undelivered != nullptr) FUZZ_CHECK(text.find(*undelivered) != std::string::npos);
  }
  const json::value* error = o->if_contains("error");
  FUZZ_CHECK(error != nullptr && error->is_string() && error->as_string() == code);
  const json::value* detail = o->if_contains("detail");
  FUZZ_CHECK(detail != nullptr && detail->is_string());
  if (undelivered != nullptr) {
    const json::value* u = o->if_contains("undelivered");
    FUZZ_CHECK(u != nullptr && u->is_string() && u->as_string() == *undelivered);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);

  const edge::ClientMessage parsed = edge::ParseClientMessage(text);
  std::optional<json::object> object = ParseObject(text);
  const json::value* field = object ? object->if_contains("message") : nullptr;
  if (field != nullptr && field->is_string()) {
    FUZZ_CHECK(parsed.message.has_value() && parsed.error_detail.empty());
    FUZZ_CHECK(*parsed.message == field->as_string());
    const std::string& message = *parsed.message;

    // The frame the room (or the echo) gets back.
    json::object out;
    out["message"] = message;
    const std::string frame = json::serialize(out);
    const edge::ClientMessage again = edge::ParseClientMessage(frame);
    FUZZ_CHECK(again.message.has_value() && *again.message == message);

    // What the sender gets when the layer refuses it.
    for (const bool readable : {false, true}) {
      CheckErrorFrame(edge::ErrorFrame("not_delivered", "your message was not delivered: x",
                                       &message, readable),
                      "not_delivered", &message, readable);
    }
  } else {
    FUZZ_CHECK(!parsed.message.has_value() && !parsed.error_detail.empty());
    for (const bool readable : {false, true}) {
      CheckErrorFrame(edge::ErrorFrame("bad_frame", parsed.error_detail, nullptr, readable),
                      "bad_frame", nullptr, readable);
    }
  }

  // The same text as an event from the layer (a chat.message delivered to the room).
  edge::LayerEventPtr event = edge::LayerEvent::FromWire("chat.message", text);
  const std::optional<std::string> wire_message = event->StringField("message");
  if (field != nullptr && field->is_string()) {
    FUZZ_CHECK(wire_message.has_value() && *wire_message == field->as_string());
  } else {
    FUZZ_CHECK(!wire_message.has_value());
  }
  FUZZ_CHECK(event->fields().empty() == (!object.has_value() || object->empty()));
  return 0;
}

// LayerEvent: an event from the channel layer, as the edge keeps it: the JSON
// text it travelled as, parsed at most once, and frames derived from it built
// at most once, however many local consumers receive it.
//
//   LayerEventPtr e = LayerEvent::Make("chat.message", {{"message", "hi"}});
//   auto frame = e->Memo("chat.frame", [&] { return BuildFrame(*e); });
//
// Immutable after construction except for the lazily filled caches; thread-safe.
#ifndef CHAT_EDGE_CHANNELS_LAYER_EVENT_H_
#define CHAT_EDGE_CHANNELS_LAYER_EVENT_H_

#include <boost/json/object.hpp>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"

namespace edge {

class LayerEvent;
using LayerEventPtr = std::shared_ptr<const LayerEvent>;
using Frame = std::shared_ptr<const std::string>;

// Shared (LayerEventPtr) from its making: a handler may keep it (shared_from_this).
// A field's value as the edge shows it: a byte string in channels_groupsvc's
// extended JSON ({"$bytes": "<base64>"}, protos/groupsvc/v1/layer.proto) that
// holds UTF-8 text becomes that text; anything else is returned as it is.
boost::json::value TextValue(const boost::json::value& value);

class LayerEvent : public std::enable_shared_from_this<LayerEvent> {
 public:
  // `fields` must not hold "type"; it is added.
  static LayerEventPtr Make(std::string type, boost::json::object fields);
  // From the wire: `json` is the whole event object, "type" included;
  // `offset` its place in its group's history under `epoch` (0: none).
  static LayerEventPtr FromWire(std::string type, std::string json, uint64_t offset = 0,
                                std::string epoch = "");

  const std::string& type() const { return type_; }
  const std::string& json() const { return json_; }
  uint64_t offset() const { return offset_; }
  const std::string& epoch() const { return epoch_; }
  // The parsed object; an empty object if the JSON was not an object.
  const boost::json::object& fields() const;
  // The string field `name`, if present and a string (or text sent as
  // bytes, see TextValue).
  std::optional<std::string> StringField(const std::string& name) const;
  // The value `build` returns the first time `key` is asked for, shared after.
  Frame Memo(const std::string& key, const std::function<std::string()>& build) const;

 private:
  LayerEvent(std::string type, std::string json) : type_(std::move(type)), json_(std::move(json)) {}

  const std::string type_;
  const std::string json_;
  uint64_t offset_ = 0;
  std::string epoch_;
  mutable absl::Mutex mu_;
  mutable std::optional<boost::json::object> fields_ ABSL_GUARDED_BY(mu_);
  mutable absl::flat_hash_map<std::string, Frame> memo_ ABSL_GUARDED_BY(mu_);
};

}  // namespace edge

#endif  // CHAT_EDGE_CHANNELS_LAYER_EVENT_H_

#include "edge/channels/layer_event.h"

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include "absl/strings/escaping.h"
#include "shared/utf8.h"

namespace edge {

LayerEventPtr LayerEvent::Make(std::string type, boost::json::object fields) {
  boost::json::object whole;
  whole.reserve(fields.size() + 1);
  whole["type"] = type;
  for (auto& [k, v] : fields) whole[k] = std::move(v);
  std::string json = boost::json::serialize(whole);
  auto event = std::shared_ptr<LayerEvent>(new LayerEvent(std::move(type), std::move(json)));
  absl::MutexLock lock(&event->mu_);
  event->fields_ = std::move(whole);
  return event;
}

LayerEventPtr LayerEvent::FromWire(std::string type, std::string json, uint64_t offset,
                                   std::string epoch) {
  auto event = std::shared_ptr<LayerEvent>(new LayerEvent(std::move(type), std::move(json)));
  event->offset_ = offset;
  event->epoch_ = std::move(epoch);
  return event;
}

const boost::json::object& LayerEvent::fields() const {
  absl::MutexLock lock(&mu_);
  if (!fields_.has_value()) {
    boost::system::error_code ec;
    boost::json::value v = boost::json::parse(json_, ec);
    fields_ = (!ec && v.is_object()) ? std::move(v.as_object()) : boost::json::object();
  }
  // Never reassigned once set, so the reference stays valid.
  return *fields_;
}

boost::json::value TextValue(const boost::json::value& value) {
  const boost::json::object* o = value.if_object();
  if (o == nullptr || o->size() != 1) return value;
  const boost::json::value* b64 = o->if_contains("$bytes");
  if (b64 == nullptr || !b64->is_string()) return value;
  std::string bytes;
  const boost::json::string& text = b64->as_string();
  if (!absl::Base64Unescape(absl::string_view(text.data(), text.size()), &bytes) ||
      !chat::IsValidUtf8(bytes)) {
    return value;
  }
  return boost::json::value(bytes);
}

std::optional<std::string> LayerEvent::StringField(const std::string& name) const {
  const boost::json::object& f = fields();
  auto it = f.find(name);
  if (it == f.end()) return std::nullopt;
  boost::json::value v = TextValue(it->value());
  if (!v.is_string()) return std::nullopt;
  return std::string(v.as_string());
}

Frame LayerEvent::Memo(const std::string& key, const std::function<std::string()>& build) const {
  {
    absl::MutexLock lock(&mu_);
    auto it = memo_.find(key);
    if (it != memo_.end()) return it->second;
  }
  auto built = std::make_shared<const std::string>(build());
  absl::MutexLock lock(&mu_);
  return memo_.try_emplace(key, std::move(built)).first->second;
}

}  // namespace edge

#include "groupsvc/registry/event_json.h"

#include <google/protobuf/util/json_util.h>

#include <algorithm>
#include <string>

#include "absl/strings/str_cat.h"

namespace groupsvc {
namespace {

int ValueDepth(const google::protobuf::Value& value, int limit);

// Levels of objects and arrays, counting at most up to `limit` + 1.
int StructDepth(const google::protobuf::Struct& fields, int limit) {
  int deepest = 0;
  if (limit > 0) {
    for (const auto& [key, value] : fields.fields()) {
      deepest = std::max(deepest, ValueDepth(value, limit - 1));
    }
  }
  return 1 + deepest;
}

int ValueDepth(const google::protobuf::Value& value, int limit) {
  if (value.has_struct_value()) return StructDepth(value.struct_value(), limit);
  if (value.has_list_value()) {
    int deepest = 0;
    if (limit > 0) {
      for (const auto& item : value.list_value().values()) {
        deepest = std::max(deepest, ValueDepth(item, limit - 1));
      }
    }
    return 1 + deepest;
  }
  return 0;
}

}  // namespace

absl::StatusOr<EventPtr> EventFromStruct(const google::protobuf::Struct& fields) {
  if (StructDepth(fields, kMaxEventDepth) > kMaxEventDepth) {
    return absl::InvalidArgumentError(
        absl::StrCat("event nests objects and arrays more than ", kMaxEventDepth, " levels deep"));
  }
  auto type = fields.fields().find("type");
  if (type == fields.fields().end() || !type->second.has_string_value() ||
      type->second.string_value().empty()) {
    return absl::InvalidArgumentError(
        "event must be a JSON object with a non-empty string \"type\", e.g. "
        "{\"type\": \"chat.message\", \"message\": \"hi\"}");
  }
  std::string json;
  auto status = google::protobuf::util::MessageToJsonString(fields, &json);
  if (!status.ok()) {
    // Not expected once the depth is checked; protobuf's words stay out of the answer.
    return absl::InvalidArgumentError("event cannot be written as JSON");
  }
  return MakeEvent(type->second.string_value(), std::move(json));
}

absl::StatusOr<google::protobuf::Struct> StructFromEvent(const Event& event) {
  google::protobuf::Struct fields;
  auto status = google::protobuf::util::JsonStringToMessage(event.json, &fields);
  if (!status.ok()) {
    // Stream events are JSON text groupsvc does not parse; one too deep (or
    // not JSON) is found only here.
    return absl::DataLossError(absl::StrCat(
        "event of type \"", event.type,
        "\" cannot be returned as a Struct: it is not a JSON object, or nests more than ",
        kMaxEventDepth, " levels deep"));
  }
  return fields;
}

}  // namespace groupsvc

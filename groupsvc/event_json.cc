#include "groupsvc/event_json.h"

#include <google/protobuf/util/json_util.h>

#include <string>

#include "absl/strings/str_cat.h"

namespace groupsvc {

absl::StatusOr<EventPtr> EventFromStruct(const google::protobuf::Struct& fields) {
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
    return absl::InvalidArgumentError(absl::StrCat("event is not valid JSON: ", status.ToString()));
  }
  return MakeEvent(type->second.string_value(), std::move(json));
}

absl::StatusOr<google::protobuf::Struct> StructFromEvent(const Event& event) {
  google::protobuf::Struct fields;
  auto status = google::protobuf::util::JsonStringToMessage(event.json, &fields);
  if (!status.ok()) {
    return absl::DataLossError(absl::StrCat("event of type \"", event.type,
                                            "\" is not a JSON object: ", status.ToString()));
  }
  return fields;
}

}  // namespace groupsvc

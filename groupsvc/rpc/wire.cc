#include "groupsvc/rpc/wire.h"

#include <grpcpp/impl/codegen/proto_utils.h>

#include "absl/strings/str_cat.h"

namespace groupsvc {

using Traits = grpc::SerializationTraits<google::protobuf::MessageLite>;

absl::Status ParseWire(const grpc::ByteBuffer& buffer, google::protobuf::MessageLite* message) {
  message->Clear();
  grpc::ByteBuffer copy(buffer);  // Shares the slices; Deserialize consumes its argument.
  if (!Traits::Deserialize(&copy, message).ok()) {
    message->Clear();
    return absl::InvalidArgumentError(absl::StrCat(
        "the request is not a valid ", message->GetTypeName(),
        ": malformed protobuf, a string field that is not UTF-8, or messages nested deeper "
        "than 100 levels"));
  }
  return absl::OkStatus();
}

absl::Status SerializeWire(const google::protobuf::MessageLite& message, grpc::ByteBuffer* buffer) {
  bool own = false;
  buffer->Clear();  // The writer appends to an empty buffer only.
  grpc::Status s = Traits::Serialize(message, buffer, &own);
  if (!s.ok()) {
    return absl::InternalError(
        absl::StrCat("cannot serialize ", message.GetTypeName(), ": ", s.error_message()));
  }
  return absl::OkStatus();
}

}  // namespace groupsvc

// Protobuf messages to and from gRPC byte buffers, for the methods groupsvc
// registers as raw (grpc::ByteBuffer) so that it parses requests itself.
//
// Why: in gRPC 1.51's callback API a request that does not parse (garbage
// bytes, a proto3 string that is not UTF-8, nesting beyond protobuf's
// recursion limit) never reaches the handler: the generated unary handler
// answers UNIMPLEMENTED with no message, and a bidi stream's read just fails
// like a half-close. Parsing here answers INVALID_ARGUMENT, saying why.
//
//   v1::GroupSendRequest request;
//   if (absl::Status s = ParseWire(*raw, &request); !s.ok()) return Done(context, s);
//
// Thread-compatible: free functions of their arguments only.
#ifndef CHAT_GROUPSVC_WIRE_H_
#define CHAT_GROUPSVC_WIRE_H_

#include <google/protobuf/message_lite.h>
#include <grpcpp/support/byte_buffer.h>

#include "absl/status/status.h"

namespace groupsvc {

// INVALID_ARGUMENT naming the message type when `buffer` is not one.
absl::Status ParseWire(const grpc::ByteBuffer& buffer, google::protobuf::MessageLite* message);
// Replaces `buffer` with the serialized message; INTERNAL if that fails.
absl::Status SerializeWire(const google::protobuf::MessageLite& message, grpc::ByteBuffer* buffer);

}  // namespace groupsvc

#endif  // CHAT_GROUPSVC_WIRE_H_

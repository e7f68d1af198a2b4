// Protobuf messages to and from gRPC byte buffers, for the methods groupsvc
// registers as raw (grpc::ByteBuffer) so that it parses requests itself.
//
// Why: a request that does not parse (garbage bytes, a proto3 string that is
// not UTF-8, nesting beyond protobuf's recursion limit) must be answered
// INVALID_ARGUMENT saying why; gRPC's generated typed handlers answer
// UNIMPLEMENTED with no message, or end a stream as if the client had closed it.
//
//   v1::GroupSendRequest request;
//   if (absl::Status s = ParseWire(call->request(), &request); !s.ok()) return call->Reply(s);
//
// Thread-compatible: free functions of their arguments only.
#ifndef CHAT_GROUPSVC_RPC_WIRE_H_
#define CHAT_GROUPSVC_RPC_WIRE_H_

#include <google/protobuf/message_lite.h>
#include <grpcpp/support/byte_buffer.h>

#include "absl/status/status.h"

namespace groupsvc {

// INVALID_ARGUMENT naming the message type when `buffer` is not one.
absl::Status ParseWire(const grpc::ByteBuffer& buffer, google::protobuf::MessageLite* message);
// Replaces `buffer` with the serialized message; INTERNAL if that fails.
absl::Status SerializeWire(const google::protobuf::MessageLite& message, grpc::ByteBuffer* buffer);

}  // namespace groupsvc

#endif  // CHAT_GROUPSVC_RPC_WIRE_H_

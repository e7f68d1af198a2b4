// Conversion between absl::Status (used inside both services) and grpc::Status
// (on the wire). gRPC 1.51 offers none; the canonical codes are the same numbers.
//
//   return ToGrpcStatus(registry.GroupAdd(group, channel));
#ifndef CHAT_SHARED_GRPC_STATUS_H_
#define CHAT_SHARED_GRPC_STATUS_H_

#include <grpcpp/support/status.h>

#include "absl/status/status.h"

namespace chat {

grpc::Status ToGrpcStatus(const absl::Status& status);
absl::Status FromGrpcStatus(const grpc::Status& status);

}  // namespace chat

#endif  // CHAT_SHARED_GRPC_STATUS_H_

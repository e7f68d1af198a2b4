// ReflectionClient: does what grpcurl does, knowing only the server's address:
// lists services and loads their descriptors through server reflection
// (v1alpha), turns a JSON request into a message with those descriptors, calls
// the method through the generic stub and prints the answer as JSON.
//
//   ReflectionClient client(grpc::CreateChannel(addr, grpc::InsecureChannelCredentials()));
//   absl::StatusOr<std::string> out =
//       client.CallJson("groupsvc.v1.ChannelLayer/ListGroups", R"({"namePrefix": "chat_"})");
#ifndef CHAT_TESTS_SUPPORT_REFLECTION_CLIENT_H_
#define CHAT_TESTS_SUPPORT_REFLECTION_CLIENT_H_

#include <google/protobuf/descriptor.h>
#include <google/protobuf/descriptor_database.h>
#include <google/protobuf/dynamic_message.h>
#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"

namespace chat::testing {

class ReflectionClient {
 public:
  explicit ReflectionClient(std::shared_ptr<grpc::Channel> channel);

  absl::StatusOr<std::vector<std::string>> ListServices();
  // The service's descriptor, loaded (with every file it needs) by reflection.
  absl::StatusOr<const google::protobuf::ServiceDescriptor*> FindService(const std::string& name);
  // `method` is "package.Service/Method". The gRPC status of a failed call
  // comes back as an absl::Status with the same code and message.
  absl::StatusOr<std::string> CallJson(const std::string& method, const std::string& json_request);

 private:
  absl::Status LoadFileContaining(const std::string& symbol);

  std::shared_ptr<grpc::Channel> channel_;
  google::protobuf::SimpleDescriptorDatabase database_;
  absl::flat_hash_set<std::string> loaded_files_;
  std::unique_ptr<google::protobuf::DescriptorPool> pool_;
  google::protobuf::DynamicMessageFactory factory_;
};

}  // namespace chat::testing

#endif  // CHAT_TESTS_SUPPORT_REFLECTION_CLIENT_H_

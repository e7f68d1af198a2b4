#include "tests/support/reflection_client.h"

#include <google/protobuf/descriptor.pb.h>
#include <google/protobuf/util/json_util.h>
#include <grpcpp/generic/generic_stub.h>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "grpc/reflection/v1alpha/reflection.grpc.pb.h"
#include "shared/grpc_status.h"

namespace chat::testing {

namespace refl = ::grpc::reflection::v1alpha;

ReflectionClient::ReflectionClient(std::shared_ptr<grpc::Channel> channel)
    : channel_(std::move(channel)),
      pool_(std::make_unique<google::protobuf::DescriptorPool>(&database_)) {}

namespace {

absl::StatusOr<refl::ServerReflectionResponse> Ask(grpc::Channel* channel,
                                                   const refl::ServerReflectionRequest& request) {
  auto stub = refl::ServerReflection::NewStub(
      std::shared_ptr<grpc::Channel>(channel, [](grpc::Channel*) {}));
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  auto stream = stub->ServerReflectionInfo(&context);
  refl::ServerReflectionResponse response;
  bool got = stream->Write(request) && stream->Read(&response);
  stream->WritesDone();
  grpc::Status status = stream->Finish();
  if (!got)
    return FromGrpcStatus(
        status.ok() ? grpc::Status(grpc::StatusCode::UNKNOWN, "no reflection answer") : status);
  if (response.has_error_response()) {
    return absl::Status(static_cast<absl::StatusCode>(response.error_response().error_code()),
                        response.error_response().error_message());
  }
  return response;
}

}  // namespace

absl::StatusOr<std::vector<std::string>> ReflectionClient::ListServices() {
  refl::ServerReflectionRequest request;
  request.set_list_services("");
  absl::StatusOr<refl::ServerReflectionResponse> response = Ask(channel_.get(), request);
  if (!response.ok()) return response.status();
  std::vector<std::string> names;
  for (const auto& s : response->list_services_response().service()) names.push_back(s.name());
  return names;
}

absl::Status ReflectionClient::LoadFileContaining(const std::string& symbol) {
  refl::ServerReflectionRequest request;
  request.set_file_containing_symbol(symbol);
  absl::StatusOr<refl::ServerReflectionResponse> response = Ask(channel_.get(), request);
  if (!response.ok()) return response.status();
  for (const std::string& bytes : response->file_descriptor_response().file_descriptor_proto()) {
    google::protobuf::FileDescriptorProto file;
    if (!file.ParseFromString(bytes)) return absl::DataLossError("bad FileDescriptorProto");
    if (loaded_files_.insert(file.name()).second) database_.Add(file);
  }
  return absl::OkStatus();
}

absl::StatusOr<const google::protobuf::ServiceDescriptor*> ReflectionClient::FindService(
    const std::string& name) {
  if (const auto* s = pool_->FindServiceByName(name)) return s;
  if (absl::Status s = LoadFileContaining(name); !s.ok()) return s;
  if (const auto* s = pool_->FindServiceByName(name)) return s;
  return absl::NotFoundError(absl::StrCat("service ", name, " not described by reflection"));
}

absl::StatusOr<std::string> ReflectionClient::CallJson(const std::string& method,
                                                       const std::string& json_request) {
  const size_t slash = method.find('/');
  if (slash == std::string::npos) return absl::InvalidArgumentError("method is Service/Method");
  absl::StatusOr<const google::protobuf::ServiceDescriptor*> service =
      FindService(method.substr(0, slash));
  if (!service.ok()) return service.status();
  const google::protobuf::MethodDescriptor* m =
      (*service)->FindMethodByName(method.substr(slash + 1));
  if (m == nullptr) return absl::NotFoundError(absl::StrCat("no method ", method));

  std::unique_ptr<google::protobuf::Message> request(factory_.GetPrototype(m->input_type())->New());
  auto parsed = google::protobuf::util::JsonStringToMessage(json_request, request.get());
  if (!parsed.ok()) return absl::InvalidArgumentError(parsed.ToString());
  std::string wire;
  request->SerializeToString(&wire);
  grpc::Slice slice(wire);
  grpc::ByteBuffer request_buffer(&slice, 1);
  grpc::ByteBuffer response_buffer;

  grpc::GenericStub stub(channel_);
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  absl::Notification done;
  grpc::Status status;
  stub.UnaryCall(&context, absl::StrCat("/", method), grpc::StubOptions(), &request_buffer,
                 &response_buffer, [&](grpc::Status s) {
                   status = std::move(s);
                   done.Notify();
                 });
  done.WaitForNotification();
  if (!status.ok()) return FromGrpcStatus(status);

  std::vector<grpc::Slice> slices;
  if (!response_buffer.Dump(&slices).ok()) return absl::DataLossError("unreadable response");
  std::string bytes;
  for (const auto& s : slices) bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
  std::unique_ptr<google::protobuf::Message> response(
      factory_.GetPrototype(m->output_type())->New());
  if (!response->ParseFromString(bytes)) return absl::DataLossError("bad response message");
  std::string json;
  google::protobuf::util::JsonPrintOptions options;
  options.always_print_primitive_fields = false;
  auto printed = google::protobuf::util::MessageToJsonString(*response, &json, options);
  if (!printed.ok()) return absl::InternalError(printed.ToString());
  return json;
}

}  // namespace chat::testing

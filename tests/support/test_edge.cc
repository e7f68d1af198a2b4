#include "tests/support/test_edge.h"

#include <random>

namespace chat::testing {

std::string TestEdge::RandomIncarnation() {
  std::random_device random;
  std::string bytes(16, '\0');
  for (char& c : bytes) c = static_cast<char>(random() & 0xff);
  return bytes;
}

TestEdge::TestEdge(std::shared_ptr<grpc::Channel> channel, std::string edge_id, std::string prefix,
                   std::string incarnation)
    : edge_id_(std::move(edge_id)),
      prefix_(std::move(prefix)),
      incarnation_(std::move(incarnation)),
      stub_(v1::ChannelLayer::NewStub(channel)) {
  stream_ = stub_->Attach(&context_);
  reader_ = std::thread([this] { ReadLoop(); });
}

TestEdge::~TestEdge() {
  context_.TryCancel();
  reader_.join();
}

void TestEdge::ReadLoop() {
  v1::ServerMessage message;
  while (stream_->Read(&message)) {
    absl::MutexLock lock(&mu_);
    if (message.has_welcome()) welcome_ = message.welcome();
    if (message.has_draining()) draining_ = true;
    for (const auto& a : message.acks()) acks_.push_back(a);
    for (const auto& d : message.deliveries()) deliveries_.push_back(d);
    for (const auto& c : message.closes()) closes_.push_back(c);
    deliveries_received_ += message.deliveries_size();
    ++messages_received_;
  }
  {
    // A well-behaved edge closes its side once the server has ended the stream.
    absl::MutexLock lock(&write_mu_);
    if (!writes_done_) stream_->WritesDone();
    writes_done_ = true;
  }
  grpc::Status status = stream_->Finish();
  absl::MutexLock lock(&mu_);
  final_status_ = status;
  ended_ = true;
}

grpc::Status TestEdge::Hello() {
  v1::EdgeMessage hello;
  hello.mutable_hello()->set_edge_id(edge_id_);
  hello.mutable_hello()->set_channel_prefix(prefix_);
  hello.mutable_hello()->set_incarnation(incarnation_);
  Write(hello);
  absl::MutexLock lock(&mu_);
  auto ready = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) { return welcome_.has_value() || ended_; };
  mu_.AwaitWithTimeout(absl::Condition(&ready), absl::Seconds(10));
  if (welcome_.has_value()) return grpc::Status::OK;
  if (ended_) return final_status_;
  return grpc::Status(grpc::StatusCode::DEADLINE_EXCEEDED, "no welcome");
}

bool TestEdge::Write(const v1::EdgeMessage& message) {
  absl::MutexLock lock(&write_mu_);
  return stream_->Write(message);
}

bool TestEdge::Command(const v1::Command& command) {
  v1::EdgeMessage message;
  *message.add_commands() = command;
  return Write(message);
}

bool TestEdge::GroupAdd(uint64_t id, const std::string& group, const std::string& channel) {
  v1::Command c;
  c.set_request_id(id);
  c.mutable_group_add()->set_group(group);
  c.mutable_group_add()->set_channel(channel);
  return Command(c);
}

bool TestEdge::GroupDiscard(uint64_t id, const std::string& group, const std::string& channel) {
  v1::Command c;
  c.set_request_id(id);
  c.mutable_group_discard()->set_group(group);
  c.mutable_group_discard()->set_channel(channel);
  return Command(c);
}

bool TestEdge::GroupSend(uint64_t id, const std::string& group, const std::string& type,
                         const std::string& json) {
  v1::Command c;
  c.set_request_id(id);
  c.mutable_group_send()->set_group(group);
  c.mutable_group_send()->mutable_event()->set_type(type);
  c.mutable_group_send()->mutable_event()->set_json(json);
  return Command(c);
}

bool TestEdge::Send(uint64_t id, const std::string& channel, const std::string& type,
                    const std::string& json) {
  v1::Command c;
  c.set_request_id(id);
  c.mutable_send()->set_channel(channel);
  c.mutable_send()->mutable_event()->set_type(type);
  c.mutable_send()->mutable_event()->set_json(json);
  return Command(c);
}

std::optional<v1::Ack> TestEdge::NextAck(absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  auto ready = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) { return !acks_.empty() || ended_; };
  mu_.AwaitWithTimeout(absl::Condition(&ready), timeout);
  if (acks_.empty()) return std::nullopt;
  v1::Ack a = acks_.front();
  acks_.pop_front();
  return a;
}

std::optional<v1::Delivery> TestEdge::NextDelivery(absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  auto ready = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) { return !deliveries_.empty() || ended_; };
  mu_.AwaitWithTimeout(absl::Condition(&ready), timeout);
  if (deliveries_.empty()) return std::nullopt;
  v1::Delivery d = deliveries_.front();
  deliveries_.pop_front();
  return d;
}

bool TestEdge::WaitDraining(absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  auto ready = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) { return draining_ || ended_; };
  mu_.AwaitWithTimeout(absl::Condition(&ready), timeout);
  return draining_;
}

std::optional<grpc::Status> TestEdge::WaitEnded(absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  auto ready = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) { return ended_; };
  if (!mu_.AwaitWithTimeout(absl::Condition(&ready), timeout)) return std::nullopt;
  return final_status_;
}

grpc::Status TestEdge::Close() {
  {
    absl::MutexLock lock(&write_mu_);
    if (!writes_done_) stream_->WritesDone();
    writes_done_ = true;
  }
  std::optional<grpc::Status> status = WaitEnded(absl::Seconds(10));
  return status.value_or(grpc::Status(grpc::StatusCode::DEADLINE_EXCEEDED, "stream did not end"));
}

std::optional<v1::CloseConnections> TestEdge::NextClose(absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  auto ready = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) { return !closes_.empty() || ended_; };
  mu_.AwaitWithTimeout(absl::Condition(&ready), timeout);
  if (closes_.empty()) return std::nullopt;
  v1::CloseConnections c = closes_.front();
  closes_.pop_front();
  return c;
}

bool TestEdge::UserConnect(uint64_t id, const std::string& user, const std::string& channel,
                           uint32_t cap, const std::string& room) {
  v1::Command c;
  c.set_request_id(id);
  c.mutable_user_connect()->mutable_user()->set_id(user);
  c.mutable_user_connect()->mutable_user()->set_name("Name of " + user);
  c.mutable_user_connect()->set_channel(channel);
  c.mutable_user_connect()->set_room(room);
  c.mutable_user_connect()->set_max_connections(cap);
  return Command(c);
}

size_t TestEdge::deliveries_received() {
  absl::MutexLock lock(&mu_);
  return deliveries_received_;
}

size_t TestEdge::messages_received() {
  absl::MutexLock lock(&mu_);
  return messages_received_;
}

}  // namespace chat::testing

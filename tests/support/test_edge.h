// TestEdge: a real gRPC client of the Attach stream, for contract and e2e
// tests. A background thread reads every ServerMessage into a queue.
//
//   TestEdge edge(channel, "edge-1", "e1!");   // a process of its own (random incarnation)
//   ASSERT_TRUE(edge.Hello().ok());
//   edge.GroupAdd(1, "room", "e1!a");
//   v1::Ack ack = edge.NextAck();
#ifndef CHAT_TESTS_SUPPORT_TEST_EDGE_H_
#define CHAT_TESTS_SUPPORT_TEST_EDGE_H_

#include <grpcpp/grpcpp.h>

#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <thread>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "groupsvc/v1/layer.grpc.pb.h"

namespace chat::testing {

namespace v1 = ::groupsvc::v1;

class TestEdge {
 public:
  // `incarnation`: Hello.incarnation; pass another TestEdge's incarnation() to
  // be the same edge process reconnecting.
  TestEdge(std::shared_ptr<grpc::Channel> channel, std::string edge_id, std::string prefix,
           std::string incarnation = RandomIncarnation());
  ~TestEdge();

  // 16 random bytes, as an edge process picks once.
  static std::string RandomIncarnation();
  const std::string& incarnation() const { return incarnation_; }

  // Sends hello and waits for welcome; the stream's status if it ended instead.
  grpc::Status Hello();
  bool Write(const v1::EdgeMessage& message);
  bool Command(const v1::Command& command);
  bool GroupAdd(uint64_t id, const std::string& group, const std::string& channel);
  bool GroupDiscard(uint64_t id, const std::string& group, const std::string& channel);
  bool GroupSend(uint64_t id, const std::string& group, const std::string& type,
                 const std::string& json);
  bool Send(uint64_t id, const std::string& channel, const std::string& type,
            const std::string& json);

  // The next ack or delivery, skipping nothing else; nullopt after `timeout`.
  std::optional<v1::Ack> NextAck(absl::Duration timeout = absl::Seconds(5));
  std::optional<v1::Delivery> NextDelivery(absl::Duration timeout = absl::Seconds(5));
  // The next operator's close (CloseConnections); nullopt after `timeout`.
  std::optional<v1::CloseConnections> NextClose(absl::Duration timeout = absl::Seconds(5));
  // A user_connect of `channel` for `user` with `cap`, acked by NextAck.
  bool UserConnect(uint64_t id, const std::string& user, const std::string& channel, uint32_t cap,
                   const std::string& room = "lobby");
  // True once a Draining message arrived.
  bool WaitDraining(absl::Duration timeout);
  // Closes our side and returns the server's final status (waits for it).
  grpc::Status Close();
  // The stream's final status, once the server ended it; nullopt after `timeout`.
  std::optional<grpc::Status> WaitEnded(absl::Duration timeout);
  // Cuts the stream as a crash would.
  void Cancel() { context_.TryCancel(); }
  size_t deliveries_received();
  // ServerMessages read so far (each may carry several acks and deliveries).
  size_t messages_received();

 private:
  void ReadLoop();

  const std::string edge_id_;
  const std::string prefix_;
  const std::string incarnation_;
  std::unique_ptr<v1::ChannelLayer::Stub> stub_;
  grpc::ClientContext context_;
  std::unique_ptr<grpc::ClientReaderWriter<v1::EdgeMessage, v1::ServerMessage>> stream_;
  std::thread reader_;
  absl::Mutex write_mu_;

  absl::Mutex mu_;
  std::optional<v1::Welcome> welcome_ ABSL_GUARDED_BY(mu_);
  std::deque<v1::Ack> acks_ ABSL_GUARDED_BY(mu_);
  std::deque<v1::Delivery> deliveries_ ABSL_GUARDED_BY(mu_);
  std::deque<v1::CloseConnections> closes_ ABSL_GUARDED_BY(mu_);
  size_t deliveries_received_ ABSL_GUARDED_BY(mu_) = 0;
  size_t messages_received_ ABSL_GUARDED_BY(mu_) = 0;
  bool draining_ ABSL_GUARDED_BY(mu_) = false;
  bool ended_ ABSL_GUARDED_BY(mu_) = false;
  grpc::Status final_status_ ABSL_GUARDED_BY(mu_);
  bool writes_done_ = false;
};

}  // namespace chat::testing

#endif  // CHAT_TESTS_SUPPORT_TEST_EDGE_H_

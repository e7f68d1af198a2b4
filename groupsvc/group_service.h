// GroupService: the groupsvc.v1.ChannelLayer gRPC service. It creates an
// AttachStream per edge and answers the unary RPCs from the GroupRegistry.
//
//   GroupService service(&registry, &timers, AttachOptions{}, &clock);
//   builder.RegisterService(&service);
//   ...
//   service.Drain(absl::Seconds(10));  // on SIGTERM: refuse new streams, drain the rest
//
// Thread-safe; no reaction blocks.
#ifndef CHAT_GROUPSVC_GROUP_SERVICE_H_
#define CHAT_GROUPSVC_GROUP_SERVICE_H_

#include <atomic>

#include "groupsvc/attach_stream.h"
#include "groupsvc/group_registry.h"
#include "groupsvc/timer_queue.h"
#include "groupsvc/v1/layer.grpc.pb.h"

namespace groupsvc {

class GroupService final : public v1::ChannelLayer::CallbackService {
 public:
  GroupService(GroupRegistry* registry, TimerQueue* timers, AttachOptions attach_options,
               const chat::Clock* clock);

  // Refuses new Attach streams (UNAVAILABLE) and tells attached edges to go.
  void Drain(absl::Duration grace);
  size_t attached_streams() const { return streams_.size(); }
  const StreamSet& streams() const { return streams_; }

  grpc::ServerBidiReactor<v1::EdgeMessage, v1::ServerMessage>* Attach(
      grpc::CallbackServerContext* context) override;
  grpc::ServerUnaryReactor* Send(grpc::CallbackServerContext* context,
                                 const v1::SendRequest* request,
                                 v1::SendResponse* response) override;
  grpc::ServerUnaryReactor* Receive(grpc::CallbackServerContext* context,
                                    const v1::ReceiveRequest* request,
                                    v1::ReceiveResponse* response) override;
  grpc::ServerUnaryReactor* NewChannel(grpc::CallbackServerContext* context,
                                       const v1::NewChannelRequest* request,
                                       v1::NewChannelResponse* response) override;
  grpc::ServerUnaryReactor* GroupAdd(grpc::CallbackServerContext* context,
                                     const v1::GroupAddRequest* request,
                                     v1::GroupAddResponse* response) override;
  grpc::ServerUnaryReactor* GroupDiscard(grpc::CallbackServerContext* context,
                                         const v1::GroupDiscardRequest* request,
                                         v1::GroupDiscardResponse* response) override;
  grpc::ServerUnaryReactor* GroupSend(grpc::CallbackServerContext* context,
                                      const v1::GroupSendRequest* request,
                                      v1::GroupSendResponse* response) override;
  grpc::ServerUnaryReactor* Flush(grpc::CallbackServerContext* context,
                                  const v1::FlushRequest* request,
                                  v1::FlushResponse* response) override;
  grpc::ServerUnaryReactor* ListGroups(grpc::CallbackServerContext* context,
                                       const v1::ListGroupsRequest* request,
                                       v1::ListGroupsResponse* response) override;
  grpc::ServerUnaryReactor* GetGroup(grpc::CallbackServerContext* context,
                                     const v1::GetGroupRequest* request,
                                     v1::Group* response) override;
  grpc::ServerUnaryReactor* Stats(grpc::CallbackServerContext* context,
                                  const v1::StatsRequest* request,
                                  v1::StatsResponse* response) override;

  // The longest a Receive waits.
  static constexpr absl::Duration kMaxReceiveWait = absl::Seconds(60);

 private:
  GroupRegistry* const registry_;
  TimerQueue* const timers_;
  const AttachOptions attach_options_;
  const chat::Clock* const clock_;
  StreamSet streams_;
  std::atomic<bool> draining_{false};
};

}  // namespace groupsvc

#endif  // CHAT_GROUPSVC_GROUP_SERVICE_H_

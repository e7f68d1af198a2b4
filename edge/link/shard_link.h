// ShardLink: the edge's link to one groupsvc shard: its gRPC channel, its
// current AttachCall, and when to start the next one.
//
// Up means the shard's Welcome agreed with our shard list. When a call ends
// (the shard restarts, the network is cut, the shard drains) the link turns
// down and retries with capped exponential backoff and jitter, capped low
// (0.5 s) so that it is back within that of the shard being reachable again
// however long the outage; each new call first replays what the layer
// placed on this shard (Host::Replay), so rooms work again without any
// browser reconnecting. A refusal of the edge id or certificate waits
// longer (refused_backoff) and is logged with a hint; a handshake that keeps
// failing is logged once per outage.
//
// Lifetime: owned by GrpcLayer, which outlives it and waits (bounded) for
// its last call to end (AwaitGone) before the completion queue shuts down.
// Threading: Tick runs on the layer's reconnect thread; the Observer methods
// on the completion queue's thread; Submit, Query and the accessors anywhere.
#ifndef CHAT_EDGE_LINK_SHARD_LINK_H_
#define CHAT_EDGE_LINK_SHARD_LINK_H_

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "edge/link/attach_call.h"
#include "groupsvc/v1/layer.grpc.pb.h"

namespace edge {

struct Backoff {
  absl::Duration min = absl::Milliseconds(100);
  absl::Duration max = absl::Milliseconds(500);
  // After groupsvc refused our edge id or certificate.
  absl::Duration refused = absl::Seconds(5);
};

class ShardLink : private AttachCall::Observer {
 public:
  // What the link asks of its layer.
  class Host {
   public:
    virtual ~Host() = default;
    // The commands a new call to shard `index` starts with.
    virtual std::vector<groupsvc::v1::Command> Replay(uint32_t index) const = 0;
    // A Welcome changed this link's bridge_seen() (completion queue's thread).
    virtual void OnBridgeSeen() = 0;
    // A call ended: Tick is due.
    virtual void OnLinkDown() = 0;
  };

  ShardLink(const LinkContext& context, Host* host, uint32_t index, uint32_t shards,
            std::string target, const std::shared_ptr<grpc::ChannelCredentials>& credentials,
            const grpc::ChannelArguments& args, Backoff backoff, bool tls);

  // Starts a call if none is open and the backoff has passed; logs a
  // handshake that keeps failing. Returns when to look again.
  absl::Time Tick(absl::Time now);
  // Queues on the current call. Without a call, or with require_ready while
  // down, `done` gets UNAVAILABLE. A membership (require_ready false) while
  // the call waits for its shard is acknowledged at once: the call carries it
  // when it connects, and a later one replays it.
  void Submit(groupsvc::v1::Command command, DoneCallback done, bool require_ready) {
    Submit(std::move(command), Pending{std::move(done), nullptr}, require_ready);
  }
  // A history, presence or user query: `answer` gets the ack (UNAVAILABLE
  // and no ack while the shard is down or if the call ends first).
  void Query(groupsvc::v1::Command command, AckCallback answer) {
    Submit(std::move(command), Pending{nullptr, std::move(answer)}, /*require_ready=*/true);
  }
  // No call starts any more; the current one is cancelled.
  void Cancel();
  // Waits (bounded) until the current call has ended.
  void AwaitGone(absl::Time deadline);
  // While up: waits (bounded) until the shard acknowledged what was submitted.
  void Drain(absl::Time deadline);

  bool ready() const { return state_.load() == State::kUp; }
  // The bridge count of this shard's last Welcome; -1 before the first.
  int bridge_seen() const { return bridge_seen_.load(); }
  // Whether the shard still bridges (chat::Bridging): true until a Welcome
  // says otherwise, so a send there fails while it is down rather than
  // reaching only part of a room.
  bool bridging() const { return bridge_seen() != 0; }
  uint64_t connects() const { return connects_.load(); }
  const std::string& target() const { return target_; }

 private:
  // kDown: no call, or one waiting for its Welcome; kUp: welcomed; kDraining:
  // the shard said it drains (its call ends soon); kStopped: cancelled.
  enum class State { kDown, kUp, kDraining, kStopped };

  void Submit(groupsvc::v1::Command command, Pending pending, bool require_ready);
  void OnWelcome(const groupsvc::v1::Welcome& welcome) override;
  void OnDraining() override;
  void OnEnded(AttachCall* call, const grpc::Status& status) override;
  void ScheduleRetryLocked(const grpc::Status& status) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void CheckConnectingLocked(absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  std::vector<std::pair<std::string, std::string>> Fields(
      std::vector<std::pair<std::string, std::string>> more) const;

  const LinkContext& context_;
  Host* const host_;
  const uint32_t index_;
  const uint32_t shards_;
  const std::string target_;
  const Backoff backoff_;
  const bool tls_;
  const std::shared_ptr<grpc::Channel> channel_;
  const std::unique_ptr<groupsvc::v1::ChannelLayer::Stub> stub_;
  std::atomic<State> state_{State::kDown};
  std::atomic<int> bridge_seen_{-1};
  std::atomic<uint64_t> connects_{0};
  absl::Mutex mu_;
  std::shared_ptr<AttachCall> call_ ABSL_GUARDED_BY(mu_);
  int failures_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Time next_attempt_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  // Since when the current call has waited for a connection (InfiniteFuture:
  // it is not waiting), and whether its failing handshakes were logged.
  absl::Time waiting_since_ ABSL_GUARDED_BY(mu_) = absl::InfiniteFuture();
  bool connect_failure_logged_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace edge

#endif  // CHAT_EDGE_LINK_SHARD_LINK_H_

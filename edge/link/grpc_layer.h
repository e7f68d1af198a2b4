// GrpcLayer: the channel layer reached through groupsvc, over one
// bidirectional Attach stream per groupsvc shard that carries every local
// channel's commands and deliveries for the groups placed there.
//
// Shards: `targets` lists groupsvc's shards in shard order (one: unsharded).
// A group lives on GroupShard(group, N), a channel on ChannelShard(channel, N)
// (shared/placement.h), and each command goes to its owner's stream; every
// shard delivers to this edge over its own stream. All streams share one
// channel prefix, one table of local channels and one completion-queue thread.
// A shard that is down fails only its own rooms' sends; the layer is ready
// while any shard is attached.
//
// Resharding: while groupsvc's shards bridge two counts (Welcome's
// bridge_shard_count M, from --bridge_shards), a layer whose list is the
// other count joins each group that the two counts place apart on both
// owners, and sends to M's owner as long as that shard still bridges; then
// every member of a room is reached through one shard whichever list its
// edge has, and when the bridge ends (the shards restarted without it) the
// sends move to the layer's own placement, where its members already are,
// and the other memberships are discarded. A layer whose list has M shards
// places as usual (the rule: chat::GroupOwners in shared/placement.h; the
// operator's side: docs/sharding.md).
//
// Per stream: commands queue while one write is in flight and go out batched.
// Each is acknowledged by request id; a delivery names the local channels it
// is for. When a stream ends (its shard restarts, the network is cut, or the
// shard drains) that shard's link turns unready, fails pending sends with
// UNAVAILABLE (or UNKNOWN for those already sent: they may have been
// delivered), and reconnects with capped exponential backoff and jitter,
// capped low (0.5 s) so that it is back within that of the shard being
// reachable again however long the outage; the new stream first replays every
// local membership of the groups placed on that shard, so rooms work again
// without any browser reconnecting. A group_send groupsvc acks as unsettled
// (it cannot see every member yet) fails with UNKNOWN too.
//
// Each process announces a random incarnation with its edge id: groupsvc lets
// only this process's later streams replace its stream, and refuses another
// process that claims the same id (ALREADY_EXISTS; logged as layer_refused).
//
// TLS and mutual TLS: see credentials.h. A refusal for the certificate
// (UNAUTHENTICATED, PERMISSION_DENIED) is retried like one for the edge id.
//
//   GrpcLayer layer({.targets = {"127.0.0.1:50051"}, .edge_id = "edge-1"});
//   layer.Start();
//
// The parts, one job each: GrpcLayer places commands and owns the threads;
// ShardLink (shard_link.h) is one shard's channel with its reconnects and
// replay; AttachCall (attach_call.h) is one stream's reads and writes.
//
// Thread-safe. The streams use gRPC's async API: their reads, writes and
// status complete on one completion queue polled by one thread of the layer's
// own, which hands deliveries to the loops (one post per loop per stream
// message). The callback API's reactors ran on a pool of gRPC's threads that
// passed the polling role between each other on every event (a wake-up each,
// see bench/README.md, "T2"); one poller passes it to no one. Writes start on
// the thread that submits (a loop, behind its round) or after the previous
// write completes (the poller). Reconnects run on one small thread for all
// shards. Lifetime: the layer outlives its links and calls (Stop waits for
// every call to end before the completion queue shuts down).
#ifndef CHAT_EDGE_LINK_GRPC_LAYER_H_
#define CHAT_EDGE_LINK_GRPC_LAYER_H_

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "edge/channels/channel_table.h"
#include "edge/channels/layer.h"
#include "edge/link/attach_call.h"
#include "edge/link/credentials.h"
#include "edge/link/shard_link.h"
#include "groupsvc/v1/layer.grpc.pb.h"
#include "shared/placement.h"

namespace edge {

struct GrpcLayerOptions {
  // groupsvc's shards, HOST:PORT each, in shard order; at least one.
  std::vector<std::string> targets;
  std::string edge_id;  // Unique per process, e.g. the pod name.
  absl::Duration min_backoff = absl::Milliseconds(100);
  absl::Duration max_backoff = absl::Milliseconds(500);
  // After groupsvc refused our edge id (another process holds it).
  absl::Duration refused_backoff = absl::Seconds(5);
  // Commands queued or awaiting an ack on one stream before sends are refused.
  size_t max_pending = 20000;
  size_t max_batch_bytes = 1 << 20;
  // The edge's loops: deliveries are handed to them (one post per loop per
  // stream message), and a command submitted on a loop starts its stream
  // write from there behind the loop's current round of handlers, so that one
  // round's commands leave in one message instead of the first alone.
  // Unset: InlineLoops (deliveries on gRPC's threads, writes at once).
  std::shared_ptr<EventLoops> loops;
  GrpcTlsOptions tls;
};

class GrpcLayer : public Layer, private ShardLink::Host {
 public:
  explicit GrpcLayer(GrpcLayerOptions options);
  ~GrpcLayer() override;

  // Starts connecting; returns at once.
  void Start();
  // Ends the streams and stops reconnecting; pending callbacks get UNAVAILABLE.
  void Stop() override;
  void Drain(absl::Time deadline) override;

  std::string Register(std::weak_ptr<ChannelSink> sink, size_t loop) override;
  void Unregister(const std::string& channel) override;
  void GroupAdd(const std::string& group, const std::string& channel, DoneCallback done) override;
  void GroupDiscard(const std::string& group, const std::string& channel) override;
  void GroupSend(const std::string& group, LayerEventPtr event, DoneCallback done) override;
  void Send(const std::string& channel, LayerEventPtr event, DoneCallback done) override;
  void SetUser(const std::string& channel, ChannelUser user) override;
  // On the stream of the user's shard (chat::UserShard), which counts the
  // user's connections across every edge. While that shard is down the
  // connection is not counted (UNAVAILABLE: it goes ahead) until the link's
  // replay registers it. Unregister ends it there.
  void ConnectUser(const std::string& channel, UserConnection user, uint32_t cap,
                   DoneCallback done) override;
  // On the stream of the shard the group's sends go to (history and presence
  // live there), in order with this process's joins.
  void History(const HistoryQuery& query, HistoryCallback done) override;
  void Presence(const std::string& group, PresenceCallback done) override;
  // While any shard is attached: one shard down must not take the edge out of
  // its Service (its rooms' senders are told, the others chat on).
  bool ready() const override;
  size_t local_groups() const override { return table_.groups(); }

  // Streams opened so far over all shards (1 per shard + reconnects).
  uint64_t connects() const;
  std::vector<LinkState> links() const override;

 private:
  // Where a group's or channel's commands go (chat::GroupOwners), with the
  // bridge count `bridge` and each link's last Welcome.
  chat::Owners GroupOwners(const std::string& group, uint32_t bridge) const;
  chat::Owners ChannelOwners(const std::string& channel) const;
  uint32_t UserOwner(const std::string& user_id) const;
  // A group_add of `channel` with its user.
  groupsvc::v1::Command Join(const std::string& group, const std::string& channel) const;

  // ShardLink::Host.
  std::vector<groupsvc::v1::Command> Replay(uint32_t index) const override;
  // The bridge count all shards announce; if it changed, each membership
  // is joined where it is now placed and left where it no longer is.
  void OnBridgeSeen() override;
  void OnLinkDown() override;

  // The completion queue's thread: completes each operation.
  void Poll();
  // Starts each shard's call when due; woken when one ends.
  void ReconnectLoop();

  const GrpcLayerOptions options_;
  const std::shared_ptr<EventLoops> loops_;  // options_.loops, or InlineLoops.
  ChannelTable table_;
  grpc::CompletionQueue cq_;
  const LinkContext context_;
  const ChannelSetup setup_;
  std::vector<std::unique_ptr<ShardLink>> links_;  // One per shard, in shard order.
  std::atomic<uint32_t> bridge_{0};

  // Started, then stopping; each once.
  enum class Phase { kIdle, kRunning, kStopping };
  absl::Mutex mu_;
  Phase phase_ ABSL_GUARDED_BY(mu_) = Phase::kIdle;
  bool wake_ ABSL_GUARDED_BY(mu_) = false;  // A link went down since the last Tick.
  std::thread poller_;
  std::thread reconnector_;
};

}  // namespace edge

#endif  // CHAT_EDGE_LINK_GRPC_LAYER_H_

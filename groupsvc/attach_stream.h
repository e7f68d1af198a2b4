// AttachStream: the server side of one edge's Attach stream (a gRPC callback
// reactor; no thread of its own).
//
// The first message announces the edge (hello); then each command is applied to
// the GroupRegistry and answered with an Ack. Deliveries for the edge's channels
// arrive from any thread through EdgeSink::Deliver and wait in a bounded queue;
// one write is in flight at a time, and everything queued meanwhile goes out
// batched in the next ServerMessage. When the queue passes half its bound, the
// stream stops reading commands until it drains (backpressure on the edge).
// The commands of the first message (the hello's, i.e. the edge's replay of
// its memberships) settle the edge's groups again (GroupRegistry::ReplayApplied).
//
// With a client certificate required (AttachIdentity::dns_names set), the
// hello's edge id must be one the certificate admits (EdgeIdAllowed), else
// the stream ends with PERMISSION_DENIED before anything is registered, so no
// stream can take another edge's id. The edge's sends to queued channels are
// charged to its QueueQuota (ApiGuard::EdgeQuota).
//
// Messages travel as raw bytes and are parsed here (see wire.h), so that one
// that is not an EdgeMessage ends the stream with INVALID_ARGUMENT, not as if
// the edge had closed it. When the stream ends, the edge is detached: as lost
// (its groups unsettled for a while) unless the edge closed its side or
// groupsvc drained it.
//
//   return AttachStream::Start(&registry, &streams, options, clock, identity, context);
//
// Threading: reactions run on gRPC's callback threads; the queue and the state
// below are guarded by mu_. The object owns itself until OnDone (SelfOwned)
// and the registry holds it while attached, so a late Deliver is harmless.
#ifndef CHAT_GROUPSVC_ATTACH_STREAM_H_
#define CHAT_GROUPSVC_ATTACH_STREAM_H_

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "groupsvc/api_guard.h"
#include "groupsvc/group_registry.h"
#include "groupsvc/self_owned.h"
#include "groupsvc/shard_map.h"
#include "groupsvc/v1/layer.grpc.pb.h"

namespace groupsvc {

class AttachStream;

// The live streams, so that shutdown can drain them all.
class StreamSet {
 public:
  void Add(const std::shared_ptr<AttachStream>& stream);
  void Remove(const AttachStream* stream);
  // Tells every stream the server is going away; each finishes once flushed.
  void DrainAll(absl::Duration grace);
  size_t size() const;

  // Stream messages read from and written to edges, for the metrics.
  void CountIn() { messages_in_.fetch_add(1, std::memory_order_relaxed); }
  void CountOut() { messages_out_.fetch_add(1, std::memory_order_relaxed); }
  uint64_t messages_in() const { return messages_in_.load(std::memory_order_relaxed); }
  uint64_t messages_out() const { return messages_out_.load(std::memory_order_relaxed); }

 private:
  mutable absl::Mutex mu_;
  std::vector<std::weak_ptr<AttachStream>> streams_ ABSL_GUARDED_BY(mu_);
  std::atomic<uint64_t> messages_in_{0};
  std::atomic<uint64_t> messages_out_{0};
};

struct AttachOptions {
  // Bytes of events queued for one edge before further copies are dropped.
  size_t max_queue_bytes = 32 << 20;
  // Bytes of events put into one ServerMessage.
  size_t max_batch_bytes = 1 << 20;
  // This groupsvc's place among the shards: commands for names placed on
  // another are refused. Null: one shard. Must outlive the streams.
  const ShardMap* shards = nullptr;
};

// Who is at the other end of a stream, as far as its TLS connection says.
struct AttachIdentity {
  // The DNS names of the verified client certificate; nullopt when no
  // certificate is required (then any edge id is accepted, as without TLS).
  std::optional<std::vector<std::string>> dns_names;
  // For the edge's queue quota and the refusal counts; may be null.
  ApiGuard* guard = nullptr;
};

class AttachStream : public grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>,
                     public EdgeSink,
                     public SelfOwned<AttachStream> {
 public:
  static AttachStream* Start(GroupRegistry* registry, StreamSet* streams,
                             const AttachOptions& options, const chat::Clock* clock,
                             AttachIdentity identity, grpc::CallbackServerContext* context);

  AttachStream(GroupRegistry* registry, StreamSet* streams, const AttachOptions& options,
               const chat::Clock* clock, AttachIdentity identity, std::string peer);

  bool Deliver(const EventPtr& event, std::vector<std::string> channels, absl::string_view group,
               uint64_t offset, absl::string_view epoch) override;
  void Replaced() override;
  // Sends Draining, then finishes with UNAVAILABLE once the queue is written.
  void Drain(absl::Duration grace);

 private:
  struct Outgoing {
    std::optional<v1::Ack> ack;
    std::optional<v1::Welcome> welcome;
    std::optional<v1::Draining> draining;
    EventPtr event;
    std::vector<std::string> channels;
    std::string group;
    uint64_t offset = 0;
    std::string epoch;  // Delivery.epoch: empty unless the group's differs from the shard's.
    absl::Time expires;
    size_t bytes = 0;
  };

  void OnReadDone(bool ok) override;
  void OnWriteDone(bool ok) override;
  void OnCancel() override;
  void OnDone() override;

  void HandleHello(const v1::Hello& hello);
  // Queues acks and control messages; these are never dropped (reads pause instead).
  void PushControl(Outgoing item);
  void RequestFinish(grpc::Status status);
  // Starts the next write, or the Finish, if none is in flight.
  void Pump();
  // Pump(), or, while an incoming batch of commands is being handled on this
  // thread, once that batch is done: its deliveries to one edge then leave in
  // one message instead of the first alone and the rest after it.
  void PumpSoon();
  void FillBatchLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void ResumeReadsIfDrained();

  GroupRegistry* const registry_;
  StreamSet* const streams_;
  const AttachOptions options_;
  const chat::Clock* const clock_;
  const AttachIdentity identity_;
  const std::string peer_;

  grpc::ByteBuffer incoming_raw_;  // Owned by the read in flight.
  v1::EdgeMessage incoming_;       // The last message read, parsed.
  v1::ServerMessage batch_;        // Filled under mu_ for the next write.
  grpc::ByteBuffer batch_raw_;     // Owned by the write in flight.

  // Set by the first message, before any command is read (edge_id_ before the
  // stream is registered); read-only after.
  bool attached_ = false;
  std::string edge_id_;
  uint64_t generation_ = 0;
  std::shared_ptr<QueueQuota> quota_;

  absl::Mutex mu_;
  std::deque<Outgoing> queue_ ABSL_GUARDED_BY(mu_);
  size_t queue_bytes_ ABSL_GUARDED_BY(mu_) = 0;
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool reads_paused_ ABSL_GUARDED_BY(mu_) = false;
  bool reading_done_ ABSL_GUARDED_BY(mu_) = false;
  // Set once the stream will take no more deliveries.
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
  bool broken_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  // Set by OnCancel (the client cancelled, the network broke, or a deadline).
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
  // Set by Drain: groupsvc itself ends the stream, on purpose.
  bool draining_ ABSL_GUARDED_BY(mu_) = false;
  std::optional<grpc::Status> finish_status_ ABSL_GUARDED_BY(mu_);
};

}  // namespace groupsvc

#endif  // CHAT_GROUPSVC_ATTACH_STREAM_H_

// AttachStream: the server side of one edge's Attach stream, a Call on a
// CompletionLoop (gRPC's async API; no thread of its own).
//
// The first message announces the edge (hello); then each command is applied to
// the GroupRegistry and answered with an Ack. Deliveries for the edge's channels
// arrive from any thread through EdgeSink::Deliver and wait in a bounded queue;
// one write is in flight at a time, and everything queued meanwhile goes out
// batched in the next ServerMessage. A write starts at the end of the loop's
// round (CompletionLoop::AtRoundEnd), so that the acks and deliveries that one
// incoming message causes leave in one message per stream. When the queue
// passes half its bound, the stream stops reading commands until it drains
// (backpressure on the edge). The commands of the first message (the hello's,
// i.e. the edge's replay of its memberships) settle the edge's groups again
// (GroupRegistry::ReplayApplied).
//
// With a client certificate required, a stream without a verified one ends at
// once with UNAUTHENTICATED, and the hello's edge id must be one the
// certificate admits (EdgeIdAllowed), else the stream ends with
// PERMISSION_DENIED before anything is registered, so no stream can take
// another edge's id. The edge's sends to queued channels are charged to its
// QueueQuota (ApiGuard::EdgeQuota).
//
// Messages travel as raw bytes and are parsed here (see wire.h), so that one
// that is not an EdgeMessage ends the stream with INVALID_ARGUMENT, not as if
// the edge had closed it. When the stream ends, the edge is detached: as lost
// (its groups unsettled for a while) unless the edge closed its side or
// groupsvc drained it.
//
//   AttachStream::Listen(&loop, &env);  // one waiting for the next edge, per loop
//
// Threading: OnComplete runs on the loop's thread; Deliver, Replaced and Drain
// come from any thread. The queue and the state below are guarded by mu_.
// Lifetime: a Call (completion_loop.h); the registry holds it while attached,
// so a late Deliver reaches a live object that knows it is closed.
#ifndef CHAT_GROUPSVC_RPC_ATTACH_STREAM_H_
#define CHAT_GROUPSVC_RPC_ATTACH_STREAM_H_

#include <grpcpp/grpcpp.h>
#include <grpcpp/support/async_stream.h>

#include <atomic>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "groupsvc/registry/group_registry.h"
#include "groupsvc/rpc/completion_loop.h"
#include "groupsvc/security/api_guard.h"
#include "groupsvc/shards/shard_map.h"
#include "groupsvc/v1/layer.grpc.pb.h"

namespace groupsvc {

class AttachStream;

// The live streams, so that shutdown can drain them all.
class StreamSet {
 public:
  // False once draining: the stream must be refused.
  bool Add(const std::shared_ptr<AttachStream>& stream);
  void Remove(const AttachStream* stream);
  // Refuses new streams and tells every stream the server is going away;
  // each finishes once flushed.
  void DrainAll(absl::Duration grace);
  // Blocks until no stream is left or `deadline` passes; true if none is.
  bool WaitEmpty(absl::Time deadline) const;
  size_t size() const;

  // Stream messages read from and written to edges, for the metrics.
  void CountIn() { messages_in_.fetch_add(1, std::memory_order_relaxed); }
  void CountOut() { messages_out_.fetch_add(1, std::memory_order_relaxed); }
  uint64_t messages_in() const { return messages_in_.load(std::memory_order_relaxed); }
  uint64_t messages_out() const { return messages_out_.load(std::memory_order_relaxed); }

 private:
  mutable absl::Mutex mu_;
  std::vector<std::weak_ptr<AttachStream>> streams_ ABSL_GUARDED_BY(mu_);
  bool draining_ ABSL_GUARDED_BY(mu_) = false;
  std::atomic<uint64_t> messages_in_{0};
  std::atomic<uint64_t> messages_out_{0};
};

struct AttachOptions {
  // Bytes of events queued for one edge before further copies are dropped.
  size_t max_queue_bytes = 32 << 20;
  // Bytes of events put into one ServerMessage.
  size_t max_batch_bytes = 1 << 20;
  // Coalescing (off at 0): while more than `coalesce_above_rate` items (acks
  // and deliveries) a second are queued for a stream, its next write waits
  // until `coalesce_delay` after the previous one started, taking what came
  // meanwhile. Below the rate, a write starts at once (latency first).
  absl::Duration coalesce_delay = absl::ZeroDuration();
  double coalesce_above_rate = 2000;
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

using RawStream = grpc::ServerAsyncReaderWriter<grpc::ByteBuffer, grpc::ByteBuffer>;

// What the ChannelLayer answers on the plaintext health port.
inline constexpr char kHealthPortOnly[] =
    "this port serves grpc.health.v1 only; groupsvc.v1.ChannelLayer is on the TLS port";

// What every stream of one server shares; outlives them.
struct AttachEnv {
  GroupRegistry* registry = nullptr;
  StreamSet* streams = nullptr;
  AttachOptions options;
  const chat::Clock* clock = nullptr;
  // For the edge's queue quota and the refusal counts; may be null.
  ApiGuard* guard = nullptr;
  // Attach needs a verified client certificate that names the edge id.
  bool require_client_certificate = false;
  // A stream that did not come over TLS (the plaintext health port) is
  // UNIMPLEMENTED (kHealthPortOnly).
  bool api_needs_tls = false;
  // Posts a request for the next Attach call (the service's RequestAttach).
  std::function<void(grpc::ServerContext*, RawStream*, grpc::ServerCompletionQueue*, void*)>
      request;
};

class AttachStream final : public Call, public EdgeSink {
 public:
  // Waits on `loop` for the next edge's stream; `env` must outlive it.
  static void Listen(CompletionLoop* loop, const AttachEnv* env);
  AttachStream(CompletionLoop* loop, const AttachEnv* env);

  bool Deliver(const EventPtr& event, std::vector<std::string> channels, absl::string_view group,
               uint64_t offset, absl::string_view epoch) override;
  void Replaced() override;
  bool CloseUser(const UserClose& close) override;
  // Sends Draining, then finishes with UNAVAILABLE once the queue is written.
  void Drain(absl::Duration grace);

 private:
  struct Outgoing {
    std::optional<v1::Ack> ack;
    std::optional<v1::Welcome> welcome;
    std::optional<v1::Draining> draining;
    std::optional<v1::CloseConnections> close;
    EventPtr event;
    std::vector<std::string> channels;
    std::string group;
    uint64_t offset = 0;
    std::string epoch;  // Delivery.epoch: empty unless the group's differs from the shard's.
    absl::Time expires;
    size_t bytes = 0;
  };

  void OnComplete(Op* op, bool ok) override;
  // Starts the next write (or the Finish) if none is in flight, then the
  // next read if one is due.
  void OnRoundEnd() override;

 private:
  // The call arrived: refused at once, or registered and reading.
  void Begin();
  void OnReadDone(bool ok);
  void OnWriteDone(bool ok);
  void OnCancel();
  void OnDone();

  void HandleHello(const v1::Hello& hello);
  // Queues acks and control messages; these are never dropped (reads pause
  // instead). False once the stream is over: nothing more goes out.
  bool PushControl(Outgoing item);
  void RequestFinish(grpc::Status status);
  // Starts the next write, or the Finish, if none is in flight.
  void Pump();
  // Pump() at the end of the loop's round (at once off a loop's thread).
  void PumpSoon();
  void FillBatchLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // True if the next write is held back for coalescing (the alarm is set).
  bool HoldLocked(absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void ResumeReadsIfDrained();

  const AttachEnv* const env_;
  GroupRegistry* const registry_;
  const AttachOptions& options_;
  grpc::ServerContext context_;
  RawStream stream_{&context_};
  Op arrived_{this};
  Op read_{this};
  Op written_{this};
  Op finished_op_{this};
  Op done_{this};
  Op held_{this};  // The coalescing alarm.
  // Set when the call arrives; read-only after.
  AttachIdentity identity_;
  std::string peer_;

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
  // The write side: idle, one write in flight, or the next held back for
  // coalescing until hold_alarm_ fires.
  enum class Writing { kIdle, kInFlight, kHeld };
  Writing writing_ ABSL_GUARDED_BY(mu_) = Writing::kIdle;
  grpc::Alarm hold_alarm_ ABSL_GUARDED_BY(mu_);
  absl::Time last_write_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  // Items written in the current window, and the rate over the last one.
  absl::Time window_start_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  uint64_t window_items_ ABSL_GUARDED_BY(mu_) = 0;
  double item_rate_ ABSL_GUARDED_BY(mu_) = 0;
  // The read side: one read in flight, or the next one due at the round's
  // end, or paused while the queue is over half its bound, or done.
  // kDone: the call is over; a late read result is dropped.
  enum class Reading { kInFlight, kDue, kPaused, kDone };
  Reading reading_ ABSL_GUARDED_BY(mu_) = Reading::kInFlight;
  // The stream's life, in order: open; closed to deliveries (replaced,
  // drained) while what is queued goes out; broken (a write failed, or gRPC
  // reported the call cancelled: nothing more is written); finishing (the
  // Finish is in flight).
  enum class Life { kOpen, kClosed, kBroken, kFinishing };
  Life life_ ABSL_GUARDED_BY(mu_) = Life::kOpen;
  // How it ends, for DetachEdge: not said yet; drained by groupsvc on purpose
  // (Drain); broken. A drained stream that then breaks stays drained.
  enum class Ending { kUnsaid, kDrained, kBroken };
  Ending ending_ ABSL_GUARDED_BY(mu_) = Ending::kUnsaid;
  std::optional<grpc::Status> finish_status_ ABSL_GUARDED_BY(mu_);
};

}  // namespace groupsvc

#endif  // CHAT_GROUPSVC_RPC_ATTACH_STREAM_H_

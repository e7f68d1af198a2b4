// AttachCall: one Attach stream to one groupsvc shard, on gRPC's async API.
//
// The call writes a Hello (with the shard link's replay) and then batches of
// commands, one write in flight: commands queue while a write is out and the
// next write takes everything queued (up to max_batch_bytes). Each command
// carries a request id; the shard's Ack resolves what waits for it. Reads run
// one at a time: a read hands the message's deliveries to the ChannelTable
// (one post per loop per message) and its Welcome, Draining and Ack to the
// call's Observer (its ShardLink).
//
// When the read side ends, everything still waiting is resolved: commands
// never written with UNAVAILABLE, commands written (groupsvc may have carried
// them out) with UNKNOWN; the status is asked for once no write is in flight,
// and Observer::OnEnded gets it. A call is used once; the link starts another.
//
// Lifetime (the edge's one idiom: shared ownership): every operation in
// flight on the completion queue holds a shared_ptr to its call, so a call
// lives until its last operation completed, whoever else let go of it.
//
// Threading: its operations complete on the completion queue's one thread
// (LinkContext::cq, polled by GrpcLayer), where Observer methods run. Submit
// is thread-safe; on a loop thread (EventLoops::current) it starts the write
// behind the loop's current round, so one round's commands leave together.
#ifndef CHAT_EDGE_LINK_ATTACH_CALL_H_
#define CHAT_EDGE_LINK_ATTACH_CALL_H_

#include <grpcpp/grpcpp.h>

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "edge/channels/channel_table.h"
#include "edge/channels/event_loops.h"
#include "edge/channels/layer.h"
#include "groupsvc/v1/layer.grpc.pb.h"

namespace edge {

// What every call of one layer shares.
struct LinkContext {
  grpc::CompletionQueue* cq = nullptr;
  std::shared_ptr<EventLoops> loops;
  ChannelTable* table = nullptr;
  std::string edge_id;
  std::string incarnation;  // Random per process: see Hello.incarnation.
  size_t max_pending = 20000;
  size_t max_batch_bytes = 1 << 20;
};

// What waits for an ack: a command's outcome (`done`), or a query's answer
// (`answer`, which gets the ack itself).
using AckCallback = std::function<void(absl::Status, const groupsvc::v1::Ack*)>;
struct Pending {
  DoneCallback done;
  AckCallback answer;
  explicit operator bool() const { return done || answer; }
  void Resolve(const absl::Status& status, const groupsvc::v1::Ack* ack);
};

// An Ack's outcome; an unsettled group_send is UNKNOWN (it may not have
// reached everyone).
absl::Status AckStatus(const groupsvc::v1::Ack& ack);

class AttachCall : public std::enable_shared_from_this<AttachCall> {
 public:
  // The call's link, told on the completion queue's thread.
  class Observer {
   public:
    virtual ~Observer() = default;
    virtual void OnWelcome(const groupsvc::v1::Welcome& welcome) = 0;
    virtual void OnDraining() = 0;
    virtual void OnEnded(AttachCall* call, const grpc::Status& status) = 0;
  };

  AttachCall(const LinkContext& context, Observer* observer,
             std::vector<groupsvc::v1::Command> replay);

  // Starts the call on `stub`; the Hello (and replay) is its first write.
  void Start(groupsvc::v1::ChannelLayer::Stub* stub);

  enum class Queued { kYes, kEnded, kFull };
  // Queues `command`; `pending` is kept (and resolved later) only when kYes.
  Queued Submit(groupsvc::v1::Command command, Pending pending);
  void Cancel() { context_.TryCancel(); }
  // Waits (bounded) until every command submitted so far is acknowledged, or
  // the call ended; false when the deadline came first.
  bool AwaitAcked(absl::Time deadline);

  // A completion-queue tag: one operation of one call. While it is in flight
  // `hold` keeps the call alive; the poller calls Complete.
  class Op {
   public:
    enum Kind { kStart, kRead, kWrite, kFinish };
    Op(AttachCall* call, Kind kind) : call_(call), kind_(kind) {}
    void Complete(bool ok);

   private:
    friend class AttachCall;
    AttachCall* const call_;
    const Kind kind_;
    std::shared_ptr<AttachCall> hold_;
  };

 private:
  // The call's phase: open; a write failed (the read ends too); the read
  // side ended (the status is asked for once no write is in flight); the
  // status was asked for.
  enum class Phase { kOpen, kBroken, kEnded, kFinishing };
  // The write side: nothing to write; a write is due on a loop (posted
  // behind its round); a write is in flight.
  enum class Writer { kIdle, kPosted, kWriting };

  void* Begin(Op& op) {
    op.hold_ = shared_from_this();
    return &op;
  }
  void Pump();
  void OnCompleted(Op::Kind kind, bool ok);
  void OnRead();
  void EndCall();
  void Finish();

  const LinkContext& link_;
  Observer* const observer_;
  grpc::ClientContext context_;
  std::unique_ptr<
      grpc::ClientAsyncReaderWriter<groupsvc::v1::EdgeMessage, groupsvc::v1::ServerMessage>>
      stream_;
  Op start_{this, Op::kStart};
  Op read_{this, Op::kRead};
  Op write_{this, Op::kWrite};
  Op finish_{this, Op::kFinish};
  groupsvc::v1::ServerMessage incoming_;  // Owned by the read in flight.
  std::string epoch_;                     // The shard's history epoch; reads only.
  groupsvc::v1::EdgeMessage batch_;       // Owned by the write in flight.
  grpc::Status status_;                   // Filled by Finish.
  absl::Mutex mu_;
  Phase phase_ ABSL_GUARDED_BY(mu_) = Phase::kOpen;
  // The Hello is the first write: kWriting until the call has started.
  Writer writer_ ABSL_GUARDED_BY(mu_) = Writer::kWriting;
  uint64_t next_id_ ABSL_GUARDED_BY(mu_) = 1;
  // Commands written or queued whose Ack has not come (replay included).
  size_t unacked_ ABSL_GUARDED_BY(mu_) = 0;
  std::deque<groupsvc::v1::Command> queue_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<uint64_t, Pending> awaiting_ ABSL_GUARDED_BY(mu_);
};

}  // namespace edge

#endif  // CHAT_EDGE_LINK_ATTACH_CALL_H_

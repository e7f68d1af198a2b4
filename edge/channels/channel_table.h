// ChannelTable: this process's channels and local group memberships, shared by
// both layers: names new channels, finds the session behind a channel, and
// remembers memberships (GrpcLayer replays them after a reconnect).
//
// A channel is registered with the loop its session runs on. Deliveries go
// through a Handoff, which groups recipients by loop and posts each loop's
// share once: a whole stream message from groupsvc (or, in-process, what one
// round of a loop's handlers sends: DeliverInRound) costs one post per loop,
// whatever the number of recipients.
//
//   ChannelTable table("edge-ab12!", loops);
//   std::string c = table.Add(session, loop);
//   ChannelTable::Handoff handoff(table);
//   table.Deliver({c}, event, handoff);   // ... more deliveries ...
//   handoff.Flush();                      // or at its end of scope
//
// Thread-safe (one mutex; a delivery takes it once for all its channels). A
// Handoff belongs to one thread. Lifetime: the table lives as long as its layer, which
// outlives the loops' handlers (the edge stops and joins its IoPool before it
// destroys the layer), so the flush it posts to a loop may hold `this`;
// sessions are reached through weak references only.
#ifndef CHAT_EDGE_CHANNELS_CHANNEL_TABLE_H_
#define CHAT_EDGE_CHANNELS_CHANNEL_TABLE_H_

#include <atomic>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/synchronization/mutex.h"
#include "edge/channels/event_loops.h"
#include "edge/channels/layer.h"

namespace edge {

class ChannelTable {
 public:
  ChannelTable(std::string prefix, std::shared_ptr<EventLoops> loops);

  class Handoff {
   public:
    explicit Handoff(const ChannelTable& table);
    ~Handoff() { Flush(); }
    Handoff(const Handoff&) = delete;
    Handoff& operator=(const Handoff&) = delete;
    // Posts what was collected, one handler per loop; the handlers run the
    // sinks in the order their deliveries were collected.
    void Flush();
    bool empty() const { return empty_; }

   private:
    friend class ChannelTable;
    // One loop's share: sinks[events[i].first, events[i + 1].first) get
    // events[i].second.
    struct Share {
      std::vector<std::shared_ptr<ChannelSink>> sinks;
      std::vector<std::pair<size_t, LayerEventPtr>> events;
    };
    void Add(size_t loop, std::shared_ptr<ChannelSink> sink, const LayerEventPtr& event);

    EventLoops& loops_;
    std::vector<Share> shares_;  // By loop.
    bool empty_ = true;
  };

  const std::string& prefix() const { return prefix_; }
  std::string Add(std::weak_ptr<ChannelSink> sink, size_t loop);
  // Returns the channel's user connection, if it had one (ConnectUser).
  std::optional<UserConnection> Remove(const std::string& channel);

  // Hands `event` to each listed channel's sink; returns how many were found.
  template <typename Channels>
  size_t Deliver(const Channels& channels, const LayerEventPtr& event, Handoff& handoff);
  // Hands `event` to every local member of `group`, in one pass under the lock.
  size_t DeliverToGroup(const std::string& group, const LayerEventPtr& event, Handoff& handoff);

  // As Deliver and DeliverToGroup, with the hand-off of the calling loop's
  // current round: on a loop's thread, what one round of its handlers sends
  // (say, a burst of messages read from one socket) is handed to each loop
  // once, behind that round; off the loops, at once.
  template <typename Channels>
  size_t DeliverInRound(const Channels& channels, const LayerEventPtr& event);
  size_t DeliverToGroupInRound(const std::string& group, const LayerEventPtr& event);

  // Memberships. Join returns false if already a member.
  bool Join(const std::string& group, const std::string& channel);
  bool Leave(const std::string& group, const std::string& channel);
  std::vector<std::pair<std::string, std::string>> AllMemberships() const;
  // The channel's user (Layer::SetUser); unset: anonymous, not watching.
  void SetUser(const std::string& channel, ChannelUser user);
  std::optional<ChannelUser> User(const std::string& channel) const;

  // Signed-in users' connections (Layer::ConnectUser). False: no such channel.
  bool SetConnection(const std::string& channel, UserConnection user);
  std::vector<std::pair<std::string, UserConnection>> Connections() const;
  size_t CountConnections(const std::string& user_id) const;
  // Posts sink->OnClose(code, reason) to each connection of `user_id` (those
  // that are members of `group`, when set) and marks them closed by an
  // operator (ClosedByOperator); returns how many.
  size_t CloseUser(const std::string& user_id, const std::string& group, uint16_t code,
                   const std::string& reason);
  bool ClosedByOperator(const std::string& channel) const;
  size_t groups() const;
  size_t channels() const;

 private:
  struct Entry {
    std::weak_ptr<ChannelSink> sink;
    size_t loop;
    std::optional<ChannelUser> user;
    std::optional<UserConnection> connection;
    bool closed_by_operator = false;
  };
  template <typename Channels>
  size_t DeliverLocked(const Channels& channels, const LayerEventPtr& event, Handoff& handoff) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Runs deliver(handoff) with the calling loop's round hand-off (see
  // DeliverInRound), or with one of its own off the loops.
  template <typename Fn>
  size_t InRound(const Fn& deliver);

  const std::string prefix_;
  const std::shared_ptr<EventLoops> loops_;
  std::atomic<uint64_t> next_{1};
  mutable absl::Mutex mu_;
  absl::flat_hash_map<std::string, Entry> sinks_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, absl::flat_hash_set<std::string>> groups_ ABSL_GUARDED_BY(mu_);
  // One per loop, each touched only by its loop's thread.
  std::vector<std::unique_ptr<Handoff>> rounds_;
};

template <typename Channels>
size_t ChannelTable::DeliverLocked(const Channels& channels, const LayerEventPtr& event,
                                   Handoff& handoff) const {
  size_t found = 0;
  for (const auto& c : channels) {
    auto it = sinks_.find(c);
    if (it == sinks_.end()) continue;
    if (auto sink = it->second.sink.lock()) {
      handoff.Add(it->second.loop, std::move(sink), event);
      ++found;
    }
  }
  return found;
}

template <typename Channels>
size_t ChannelTable::Deliver(const Channels& channels, const LayerEventPtr& event,
                             Handoff& handoff) {
  absl::MutexLock lock(&mu_);
  return DeliverLocked(channels, event, handoff);
}

template <typename Fn>
size_t ChannelTable::InRound(const Fn& deliver) {
  const size_t loop = loops_->current();
  if (loop >= rounds_.size()) {
    Handoff handoff(*this);
    return deliver(handoff);
  }
  Handoff& round = *rounds_[loop];
  const bool first = round.empty();
  const size_t found = deliver(round);
  // The table outlives the loops' handlers: the layer that owns it is kept
  // by the edge until its loops are stopped.
  if (first && !round.empty()) loops_->Post(loop, [this, loop] { rounds_[loop]->Flush(); });
  return found;
}

template <typename Channels>
size_t ChannelTable::DeliverInRound(const Channels& channels, const LayerEventPtr& event) {
  return InRound([&](Handoff& handoff) { return Deliver(channels, event, handoff); });
}

}  // namespace edge

#endif  // CHAT_EDGE_CHANNELS_CHANNEL_TABLE_H_

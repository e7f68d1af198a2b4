// Layer: the channel layer as the edge's consumers use it, with two
// implementations behind the same interface: MemoryLayer (one edge, no
// groupsvc) and GrpcLayer (edge/link/: groupsvc over one Attach stream per
// shard).
//
//   std::string channel = layer.Register(session, loop);  // "edge-ab12!c7"
//   layer.GroupAdd("chat_lobby", channel, [](absl::Status s) { ... });
//   layer.GroupSend("chat_lobby", LayerEvent::Make("chat.message", {{"message", "hi"}}), done);
//
// Thread-safe. ChannelSink::OnEvent runs on the loop the channel was
// registered with (EventLoops); `done` callbacks run on any thread and must
// not block: post to your own loop.
#ifndef CHAT_EDGE_CHANNELS_LAYER_H_
#define CHAT_EDGE_CHANNELS_LAYER_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "edge/channels/event_loops.h"
#include "edge/channels/layer_event.h"

namespace edge {

// Receives the events sent to one local channel (a WebSocket session), on
// the channel's loop.
class ChannelSink {
 public:
  virtual ~ChannelSink() = default;
  virtual void OnEvent(const LayerEventPtr& event) = 0;
  // An operator closes this connection (groupsvc's Disconnect or
  // RemoveFromGroup): a 4000-range `code` and a readable `reason`.
  virtual void OnClose(uint16_t code, const std::string& reason) {}
};

using DoneCallback = std::function<void(absl::Status)>;

// Who a channel belongs to, for presence: a signed-in user (empty id:
// anonymous) and whether it wants its groups' presence events.
struct ChannelUser {
  std::string id;
  std::string name;
  bool watch_presence = false;
};

// A group's history after `since` (seen under `epoch`), or its latest with
// `latest`: at most `limit` events (0: the layer's own bound) and about
// `max_bytes` (0: none).
struct HistoryQuery {
  std::string group;
  uint64_t since = 0;
  std::string epoch;
  uint32_t limit = 0;
  bool latest = false;
  uint32_t max_bytes = 0;
};
struct HistoryAnswer {
  std::string epoch;
  // `events` are exactly those after `since` (or the first of them).
  bool recovered = false;
  uint64_t latest = 0;                // The group's latest offset.
  std::vector<LayerEventPtr> events;  // Oldest first, each with its offset.
};
using HistoryCallback = std::function<void(absl::StatusOr<HistoryAnswer>)>;

// A signed-in user's connection, as groupsvc counts and lists it
// (docs/security.md): the user and the room its page opened.
struct UserConnection {
  std::string id;
  std::string name;
  std::string room;
  absl::Time since = absl::InfiniteFuture();  // Set by the layer when it registers it.
};

struct PresenceEntry {
  std::string id;
  std::string name;
};
using PresenceCallback = std::function<void(absl::StatusOr<std::vector<PresenceEntry>>)>;

// One link to a remote layer's shard, as /metrics shows it.
struct LinkState {
  std::string target;
  bool up = false;
};

class Layer {
 public:
  virtual ~Layer() = default;
  // A fresh channel name owned by this process; events for it go to `sink`,
  // on loop `loop` of the layer's EventLoops, until Unregister.
  virtual std::string Register(std::weak_ptr<ChannelSink> sink, size_t loop) = 0;
  virtual void Unregister(const std::string& channel) = 0;
  // `done` may be empty. While groupsvc is unreachable, GroupAdd and
  // GroupDiscard are kept and replayed on reconnect (done gets OK), but sends
  // fail at once with UNAVAILABLE: the caller must tell its client. A send
  // whose link was lost after it went out fails with UNKNOWN: it may have been
  // delivered.
  virtual void GroupAdd(const std::string& group, const std::string& channel,
                        DoneCallback done) = 0;
  virtual void GroupDiscard(const std::string& group, const std::string& channel) = 0;
  virtual void GroupSend(const std::string& group, LayerEventPtr event, DoneCallback done) = 0;
  virtual void Send(const std::string& channel, LayerEventPtr event, DoneCallback done) = 0;
  // The channel's user, for the groups it joins after this (groupsvc lists
  // it in GetPresence and tells watchers when it joins and leaves).
  virtual void SetUser(const std::string& channel, ChannelUser user) {}
  // `channel` is a connection of `user` until Unregister: counted per user
  // across every edge. With `cap` > 0, `done` gets RESOURCE_EXHAUSTED (with
  // the reason) when the user already has `cap` connections; any other
  // error means it could not be counted now (it is, once the link is back),
  // and the connection may go ahead. `done` as above; may be empty.
  virtual void ConnectUser(const std::string& channel, UserConnection user, uint32_t cap,
                           DoneCallback done) = 0;
  // A group's history and presence, as the group's shard keeps them; the
  // in-process layer keeps neither (UNIMPLEMENTED). `done` as above.
  virtual void History(const HistoryQuery& query, HistoryCallback done) {
    done(absl::UnimplementedError("this layer keeps no history"));
  }
  virtual void Presence(const std::string& group, PresenceCallback done) {
    done(absl::UnimplementedError("this layer keeps no presence"));
  }
  // Whether sends can currently reach the layer (readiness).
  virtual bool ready() const = 0;
  // Local groups with at least one local member.
  virtual size_t local_groups() const = 0;
  // Its links to a remote layer's shards, in shard order; none in-process.
  virtual std::vector<LinkState> links() const { return {}; }
  // Waits (bounded) until a remote layer has confirmed every command
  // submitted so far on each link that is up (for shutdown: the closed
  // sessions' group_discards); returns at once in-process.
  virtual void Drain(absl::Time deadline) {}
  // Ends any link to a remote layer; pending callbacks get UNAVAILABLE.
  virtual void Stop() {}
};

}  // namespace edge

#endif  // CHAT_EDGE_CHANNELS_LAYER_H_

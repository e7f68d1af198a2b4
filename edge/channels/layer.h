// Layer: the channel layer as the edge's consumers use it, with two
// implementations behind the same interface: MemoryLayer (one edge, no
// groupsvc) and GrpcLayer (groupsvc over one Attach stream per process).
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

#include <functional>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "edge/channels/event_loops.h"
#include "edge/channels/layer_event.h"

namespace edge {

// Receives the events sent to one local channel (a WebSocket session), on
// the channel's loop.
class ChannelSink {
 public:
  virtual ~ChannelSink() = default;
  virtual void OnEvent(const LayerEventPtr& event) = 0;
};

using DoneCallback = std::function<void(absl::Status)>;

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
  // Whether sends can currently reach the layer (readiness).
  virtual bool ready() const = 0;
  // Local groups with at least one local member.
  virtual size_t local_groups() const = 0;
  // Ends any link to a remote layer; pending callbacks get UNAVAILABLE.
  virtual void Stop() {}
};

}  // namespace edge

#endif  // CHAT_EDGE_CHANNELS_LAYER_H_

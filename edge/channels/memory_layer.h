// MemoryLayer: the channel layer inside one edge process, for running a single
// edge with no groupsvc (like Channels' InMemoryChannelLayer). Groups and
// channels live in the ChannelTable; a group_send reaches the local members
// directly. Capacity is each session's bounded outgoing queue.
//
//   MemoryLayer layer("edge-1!", loops);
//
// Thread-safe.
#ifndef CHAT_EDGE_CHANNELS_MEMORY_LAYER_H_
#define CHAT_EDGE_CHANNELS_MEMORY_LAYER_H_

#include <string>

#include "absl/synchronization/mutex.h"
#include "edge/channels/channel_table.h"
#include "edge/channels/layer.h"

namespace edge {

class MemoryLayer : public Layer {
 public:
  MemoryLayer(std::string prefix, std::shared_ptr<EventLoops> loops,
              size_t max_event_bytes = 256 << 10)
      : table_(std::move(prefix), std::move(loops)), max_event_bytes_(max_event_bytes) {}

  std::string Register(std::weak_ptr<ChannelSink> sink, size_t loop) override;
  void Unregister(const std::string& channel) override;
  void GroupAdd(const std::string& group, const std::string& channel, DoneCallback done) override;
  void GroupDiscard(const std::string& group, const std::string& channel) override;
  void GroupSend(const std::string& group, LayerEventPtr event, DoneCallback done) override;
  void Send(const std::string& channel, LayerEventPtr event, DoneCallback done) override;
  // Counts this process's connections only (there is no other edge).
  void ConnectUser(const std::string& channel, UserConnection user, uint32_t cap,
                   DoneCallback done) override;
  bool ready() const override { return true; }
  size_t local_groups() const override { return table_.groups(); }

 private:
  absl::Status Check(const LayerEvent& event) const;

  ChannelTable table_;
  const size_t max_event_bytes_;
  // Makes a user's count and its new connection one step.
  absl::Mutex connect_mu_;
};

}  // namespace edge

#endif  // CHAT_EDGE_CHANNELS_MEMORY_LAYER_H_

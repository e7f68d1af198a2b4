// ChannelTable: this process's channels and local group memberships, shared by
// both layers: names new channels, finds the session behind a channel, and
// remembers memberships (GrpcLayer replays them after a reconnect).
//
//   ChannelTable table("edge-ab12!");
//   std::string c = table.Add(session);
//   table.Deliver({c}, event);
//
// Thread-safe (one mutex; a delivery takes it once for all its channels).
#ifndef CHAT_EDGE_CHANNEL_TABLE_H_
#define CHAT_EDGE_CHANNEL_TABLE_H_

#include <atomic>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/synchronization/mutex.h"
#include "edge/layer.h"

namespace edge {

class ChannelTable {
 public:
  explicit ChannelTable(std::string prefix) : prefix_(std::move(prefix)) {}

  const std::string& prefix() const { return prefix_; }
  std::string Add(std::weak_ptr<ChannelSink> sink);
  void Remove(const std::string& channel);

  // Hands `event` to each listed channel's sink; returns how many were found.
  template <typename Channels>
  size_t Deliver(const Channels& channels, const LayerEventPtr& event);

  // Memberships. Join returns false if already a member.
  bool Join(const std::string& group, const std::string& channel);
  bool Leave(const std::string& group, const std::string& channel);
  // Members of `group` here, for local fan-out.
  std::vector<std::string> Members(const std::string& group) const;
  std::vector<std::pair<std::string, std::string>> AllMemberships() const;
  size_t groups() const;
  size_t channels() const;

 private:
  const std::string prefix_;
  std::atomic<uint64_t> next_{1};
  mutable absl::Mutex mu_;
  absl::flat_hash_map<std::string, std::weak_ptr<ChannelSink>> sinks_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, absl::flat_hash_set<std::string>> groups_ ABSL_GUARDED_BY(mu_);
};

template <typename Channels>
size_t ChannelTable::Deliver(const Channels& channels, const LayerEventPtr& event) {
  std::vector<std::shared_ptr<ChannelSink>> found;
  {
    absl::MutexLock lock(&mu_);
    found.reserve(channels.size());
    for (const auto& c : channels) {
      auto it = sinks_.find(c);
      if (it == sinks_.end()) continue;
      if (auto sink = it->second.lock()) found.push_back(std::move(sink));
    }
  }
  for (const auto& sink : found) sink->OnEvent(event);
  return found.size();
}

}  // namespace edge

#endif  // CHAT_EDGE_CHANNEL_TABLE_H_

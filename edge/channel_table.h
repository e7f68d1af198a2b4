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
  // Hands `event` to every local member of `group`, in one pass under the lock.
  size_t DeliverToGroup(const std::string& group, const LayerEventPtr& event);

  // Memberships. Join returns false if already a member.
  bool Join(const std::string& group, const std::string& channel);
  bool Leave(const std::string& group, const std::string& channel);
  std::vector<std::pair<std::string, std::string>> AllMemberships() const;
  size_t groups() const;
  size_t channels() const;

 private:
  using Sinks = std::vector<std::shared_ptr<ChannelSink>>;
  template <typename Channels>
  Sinks SinksLocked(const Channels& channels) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Called without the lock: sinks only post to their own executors.
  static size_t Hand(const Sinks& sinks, const LayerEventPtr& event);

  const std::string prefix_;
  std::atomic<uint64_t> next_{1};
  mutable absl::Mutex mu_;
  absl::flat_hash_map<std::string, std::weak_ptr<ChannelSink>> sinks_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, absl::flat_hash_set<std::string>> groups_ ABSL_GUARDED_BY(mu_);
};

template <typename Channels>
ChannelTable::Sinks ChannelTable::SinksLocked(const Channels& channels) const {
  Sinks found;
  found.reserve(channels.size());
  for (const auto& c : channels) {
    auto it = sinks_.find(c);
    if (it == sinks_.end()) continue;
    if (auto sink = it->second.lock()) found.push_back(std::move(sink));
  }
  return found;
}

template <typename Channels>
size_t ChannelTable::Deliver(const Channels& channels, const LayerEventPtr& event) {
  Sinks found;
  {
    absl::MutexLock lock(&mu_);
    found = SinksLocked(channels);
  }
  return Hand(found, event);
}

}  // namespace edge

#endif  // CHAT_EDGE_CHANNEL_TABLE_H_

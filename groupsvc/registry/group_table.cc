#include "groupsvc/registry/group_table.h"

#include <algorithm>

#include "absl/hash/hash.h"
#include "absl/strings/match.h"
#include "shared/names.h"

namespace groupsvc {

GroupTable::Shard& GroupTable::ShardFor(absl::string_view group) const {
  return shards_[absl::HashOf(group) % kShards];
}

void GroupTable::Add(absl::string_view group, absl::string_view channel, absl::Time now) {
  Shard& shard = ShardFor(group);
  absl::MutexLock lock(&shard.mu);
  Group& g = shard.groups[group];
  Bucket& bucket = g.by_owner[chat::ChannelOwnerPrefix(channel)];
  auto [it, inserted] = bucket.try_emplace(channel, Membership{now, now});
  if (inserted) {
    ++g.size;
  } else if (Lapsed(it->second, now)) {
    it->second = Membership{now, now};
  } else {
    it->second.renewed = now;
  }
}

void GroupTable::Discard(absl::string_view group, absl::string_view channel) {
  Shard& shard = ShardFor(group);
  absl::MutexLock lock(&shard.mu);
  auto g = shard.groups.find(group);
  if (g == shard.groups.end()) return;
  auto bucket = g->second.by_owner.find(chat::ChannelOwnerPrefix(channel));
  if (bucket == g->second.by_owner.end()) return;
  if (bucket->second.erase(channel) > 0) --g->second.size;
  if (bucket->second.empty()) g->second.by_owner.erase(bucket);
  if (g->second.size == 0) shard.groups.erase(g);
}

std::vector<OwnerMembers> GroupTable::Members(absl::string_view group, absl::Time now) {
  std::vector<OwnerMembers> members;
  Shard& shard = ShardFor(group);
  absl::MutexLock lock(&shard.mu);
  auto g = shard.groups.find(group);
  if (g == shard.groups.end()) return members;
  members.reserve(g->second.by_owner.size());
  // Lapsed members are skipped, not removed: Sweep removes them and tells
  // the registry (their presence goes with them).
  for (const auto& [owner, bucket] : g->second.by_owner) {
    std::vector<std::string> channels;
    channels.reserve(bucket.size());
    for (const auto& [channel, m] : bucket) {
      if (!Lapsed(m, now)) channels.push_back(channel);
    }
    if (!channels.empty()) members.push_back(OwnerMembers{owner, std::move(channels)});
  }
  return members;
}

void GroupTable::RemoveOwner(absl::string_view owner, absl::flat_hash_set<std::string>* groups) {
  for (Shard& shard : shards_) {
    absl::MutexLock lock(&shard.mu);
    for (auto it = shard.groups.begin(); it != shard.groups.end();) {
      Group& group = it->second;
      auto bucket = group.by_owner.find(owner);
      if (bucket != group.by_owner.end()) {
        if (groups != nullptr) groups->insert(it->first);
        group.size -= bucket->second.size();
        group.by_owner.erase(bucket);
      }
      if (group.size == 0) {
        shard.groups.erase(it++);
      } else {
        ++it;
      }
    }
  }
}

absl::flat_hash_set<std::string> GroupTable::OwnerGroups(absl::string_view owner) const {
  absl::flat_hash_set<std::string> groups;
  for (const Shard& shard : shards_) {
    absl::MutexLock lock(&shard.mu);
    for (const auto& [name, group] : shard.groups) {
      if (group.by_owner.contains(owner)) groups.insert(name);
    }
  }
  return groups;
}

void GroupTable::Clear() {
  for (Shard& shard : shards_) {
    absl::MutexLock lock(&shard.mu);
    shard.groups.clear();
  }
}

GroupPage GroupTable::List(absl::string_view name_prefix, size_t page_size,
                           absl::string_view page_token, absl::Time now) const {
  std::vector<GroupSummary> all;
  for (const Shard& shard : shards_) {
    absl::MutexLock lock(&shard.mu);
    for (const auto& [name, group] : shard.groups) {
      if (!absl::StartsWith(name, name_prefix) || name <= page_token) continue;
      size_t live = 0;
      for (const auto& [owner, bucket] : group.by_owner) {
        for (const auto& [channel, m] : bucket) live += Lapsed(m, now) ? 0 : 1;
      }
      if (live > 0) all.push_back(GroupSummary{name, live});
    }
  }
  std::sort(all.begin(), all.end(),
            [](const GroupSummary& a, const GroupSummary& b) { return a.name < b.name; });
  GroupPage page;
  if (all.size() > page_size) {
    all.resize(page_size);
    page.next_page_token = all.back().name;
  }
  page.groups = std::move(all);
  return page;
}

std::vector<MemberInfo> GroupTable::Get(absl::string_view group, absl::Time now) const {
  std::vector<MemberInfo> members;
  {
    const Shard& shard = ShardFor(group);
    absl::MutexLock lock(&shard.mu);
    auto g = shard.groups.find(group);
    if (g == shard.groups.end()) return members;
    for (const auto& [owner, bucket] : g->second.by_owner) {
      for (const auto& [channel, m] : bucket) {
        if (!Lapsed(m, now)) members.push_back(MemberInfo{channel, owner, m.joined, m.renewed});
      }
    }
  }
  std::sort(members.begin(), members.end(),
            [](const MemberInfo& a, const MemberInfo& b) { return a.channel < b.channel; });
  return members;
}

std::pair<uint64_t, uint64_t> GroupTable::Counts() const {
  uint64_t groups = 0, memberships = 0;
  for (const Shard& shard : shards_) {
    absl::MutexLock lock(&shard.mu);
    groups += shard.groups.size();
    for (const auto& [name, group] : shard.groups) memberships += group.size;
  }
  return {groups, memberships};
}

void GroupTable::Sweep(absl::Time now, std::vector<std::pair<std::string, std::string>>* lapsed) {
  for (Shard& shard : shards_) {
    absl::MutexLock lock(&shard.mu);
    for (auto g = shard.groups.begin(); g != shard.groups.end();) {
      Group& group = g->second;
      for (auto b = group.by_owner.begin(); b != group.by_owner.end();) {
        const size_t before = b->second.size();
        absl::erase_if(b->second, [&](const auto& m) {
          if (!Lapsed(m.second, now)) return false;
          if (lapsed != nullptr) lapsed->emplace_back(g->first, m.first);
          return true;
        });
        group.size -= before - b->second.size();
        if (b->second.empty()) {
          group.by_owner.erase(b++);
        } else {
          ++b;
        }
      }
      if (group.size == 0) {
        shard.groups.erase(g++);
      } else {
        ++g;
      }
    }
  }
}

}  // namespace groupsvc

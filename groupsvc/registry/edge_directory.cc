#include "groupsvc/registry/edge_directory.h"

#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "shared/names.h"

namespace groupsvc {
namespace {

// Compares secrets in time that depends on their lengths only.
bool SameSecret(absl::string_view a, absl::string_view b) {
  if (a.size() != b.size()) return false;
  unsigned char diff = 0;
  for (size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  return diff == 0;
}

absl::Status ValidateHello(const AttachRequest& hello) {
  if (absl::Status s = chat::ValidateGroupName(hello.edge_id); !s.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("edge_id follows the group name rules: ", s.message()));
  }
  const std::string& prefix = hello.channel_prefix;
  if (absl::Status s = chat::ValidateChannelName(prefix); !s.ok()) return s;
  // Its owner key (the part after the last '.') names the process: not empty.
  if (!absl::EndsWith(prefix, "!") || prefix.find('!') != prefix.size() - 1 ||
      chat::ChannelOwnerPrefix(prefix).size() < 2) {
    return absl::InvalidArgumentError(absl::StrCat(
        "channel_prefix must be a channel name ending in its only '!', like \"edge-1!\"; got \"",
        prefix, "\""));
  }
  if (hello.incarnation.size() < kMinIncarnationBytes ||
      hello.incarnation.size() > kMaxIncarnationBytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        "hello.incarnation must be ", kMinIncarnationBytes, " to ", kMaxIncarnationBytes,
        " random bytes chosen once per edge process; got ", hello.incarnation.size()));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<EdgeDirectory::Admitted> EdgeDirectory::Attach(
    const AttachRequest& hello, std::shared_ptr<EdgeSink> sink,
    absl::FunctionRef<void(absl::string_view, uint64_t)> while_replacing) {
  if (absl::Status s = ValidateHello(hello); !s.ok()) return s;
  const std::string& edge_id = hello.edge_id;
  // The process is known by its channels' owner key: "edge-1.x7k2!" owns
  // "edge-1.x7k2!c1" and "specific.x7k2!9f" alike (chat::ChannelOwnerPrefix).
  const std::string prefix(chat::ChannelOwnerPrefix(hello.channel_prefix));
  Admitted admitted;
  absl::MutexLock lock(&mu_);
  auto held = by_prefix_.find(prefix);
  if (held != by_prefix_.end() && held->second.edge_id != edge_id) {
    return absl::AlreadyExistsError(absl::StrCat(
        "channel prefix \"", prefix, "\" is held by attached edge \"", held->second.edge_id, "\""));
  }
  std::string old_prefix;
  if (auto old = prefix_by_edge_.find(edge_id); old != prefix_by_edge_.end()) {
    old_prefix = old->second;
    auto entry = by_prefix_.find(old_prefix);
    if (!SameSecret(entry->second.incarnation, hello.incarnation)) {
      return absl::AlreadyExistsError(absl::StrCat(
          "edge id \"", edge_id, "\" is attached by another process",
          entry->second.peer.empty() ? "" : absl::StrCat(" (from ", entry->second.peer, ")"),
          "; give each edge process its own --edge_id"));
    }
    admitted.replaced = std::move(entry->second.sink);
    by_prefix_.erase(entry);
    admitted.attachment.replaced_previous = true;
  }
  admitted.attachment.generation = next_generation_++;
  by_prefix_[prefix] = Entry{edge_id, hello.incarnation, hello.peer, std::move(sink),
                             admitted.attachment.generation};
  prefix_by_edge_[edge_id] = prefix;
  if (admitted.attachment.replaced_previous) {
    while_replacing(old_prefix, admitted.attachment.generation);
  }
  return admitted;
}

bool EdgeDirectory::CurrentLocked(absl::string_view edge_id, uint64_t generation) const {
  auto it = prefix_by_edge_.find(edge_id);
  return it != prefix_by_edge_.end() &&
         by_prefix_.find(it->second)->second.generation == generation;
}

std::optional<std::string> EdgeDirectory::CurrentPrefix(absl::string_view edge_id,
                                                        uint64_t generation) const {
  absl::ReaderMutexLock lock(&mu_);
  if (!CurrentLocked(edge_id, generation)) return std::nullopt;
  return prefix_by_edge_.find(edge_id)->second;
}

bool EdgeDirectory::Remove(absl::string_view edge_id, uint64_t generation) {
  absl::MutexLock lock(&mu_);
  if (!CurrentLocked(edge_id, generation)) return false;
  auto it = prefix_by_edge_.find(edge_id);
  by_prefix_.erase(it->second);
  prefix_by_edge_.erase(it);
  return true;
}

std::shared_ptr<EdgeSink> EdgeDirectory::Find(absl::string_view prefix) const {
  if (prefix.empty()) return nullptr;
  absl::ReaderMutexLock lock(&mu_);
  auto it = by_prefix_.find(prefix);
  return it == by_prefix_.end() ? nullptr : it->second.sink;
}

std::shared_ptr<EdgeSink> EdgeDirectory::FindEdge(absl::string_view edge_id) const {
  absl::ReaderMutexLock lock(&mu_);
  auto prefix = prefix_by_edge_.find(edge_id);
  if (prefix == prefix_by_edge_.end()) return nullptr;
  auto it = by_prefix_.find(prefix->second);
  return it == by_prefix_.end() ? nullptr : it->second.sink;
}

std::string EdgeDirectory::EdgeIdOf(absl::string_view prefix) const {
  absl::ReaderMutexLock lock(&mu_);
  auto it = by_prefix_.find(prefix);
  return it == by_prefix_.end() ? std::string() : it->second.edge_id;
}

void EdgeDirectory::NameOwners(std::vector<MemberInfo>& members) const {
  absl::ReaderMutexLock lock(&mu_);
  for (MemberInfo& m : members) {
    auto edge = m.edge_id.empty() ? by_prefix_.end() : by_prefix_.find(m.edge_id);
    m.edge_id = edge == by_prefix_.end() ? "" : edge->second.edge_id;
  }
}

size_t EdgeDirectory::size() const {
  absl::ReaderMutexLock lock(&mu_);
  return by_prefix_.size();
}

}  // namespace groupsvc

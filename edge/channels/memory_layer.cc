#include "edge/channels/memory_layer.h"

#include <array>

#include "absl/strings/str_cat.h"
#include "shared/names.h"

namespace edge {
namespace {

void Call(const DoneCallback& done, absl::Status status) {
  if (done) done(std::move(status));
}

}  // namespace

std::string MemoryLayer::Register(std::weak_ptr<ChannelSink> sink, size_t loop) {
  return table_.Add(std::move(sink), loop);
}

void MemoryLayer::Unregister(const std::string& channel) { table_.Remove(channel); }

void MemoryLayer::ConnectUser(const std::string& channel, UserConnection user, uint32_t cap,
                              DoneCallback done) {
  absl::Status status;
  {
    absl::MutexLock lock(&connect_mu_);
    const size_t n = table_.CountConnections(user.id);
    if (cap > 0 && n >= cap) {
      status = chat::UserCapReached(user.id, n, cap);
    } else {
      table_.SetConnection(channel, std::move(user));
    }
  }
  if (done) done(status);
}

absl::Status MemoryLayer::Check(const LayerEvent& event) const {
  if (event.type().empty()) return absl::InvalidArgumentError("event must have a \"type\"");
  if (event.json().size() > max_event_bytes_) {
    return absl::InvalidArgumentError(absl::StrCat("event of ", event.json().size(),
                                                   " bytes exceeds the limit of ", max_event_bytes_,
                                                   " bytes"));
  }
  return absl::OkStatus();
}

void MemoryLayer::GroupAdd(const std::string& group, const std::string& channel,
                           DoneCallback done) {
  absl::Status s = chat::ValidateGroupName(group);
  if (s.ok()) s = chat::ValidateChannelName(channel);
  if (s.ok()) table_.Join(group, channel);
  Call(done, s);
}

void MemoryLayer::GroupDiscard(const std::string& group, const std::string& channel) {
  table_.Leave(group, channel);
}

void MemoryLayer::GroupSend(const std::string& group, LayerEventPtr event, DoneCallback done) {
  absl::Status s = chat::ValidateGroupName(group);
  if (s.ok()) s = Check(*event);
  if (s.ok()) table_.DeliverToGroupInRound(group, event);
  Call(done, s);
}

void MemoryLayer::Send(const std::string& channel, LayerEventPtr event, DoneCallback done) {
  absl::Status s = chat::ValidateChannelName(channel);
  if (s.ok()) s = Check(*event);
  if (s.ok() && table_.DeliverInRound(std::array<std::string, 1>{channel}, event) == 0) {
    s = absl::NotFoundError(absl::StrCat("no channel \"", channel, "\" in this process"));
  }
  Call(done, s);
}

}  // namespace edge

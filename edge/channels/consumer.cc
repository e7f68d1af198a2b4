#include "edge/channels/consumer.h"

namespace edge {

void Consumer::Attach(Connection* connection, Layer* layer, Scope scope, std::string channel) {
  connection_ = connection;
  layer_ = layer;
  scope_ = std::move(scope);
  channel_ = std::move(channel);
}

void Consumer::Dispatch(const LayerEventPtr& event) {
  auto it = handlers_.find(event->type());
  if (it == handlers_.end()) {
    connection_->CountDrop("no_handler");
    return;
  }
  it->second(*event);
}

DoneCallback Consumer::OnLoop(Done done) {
  if (!done) return nullptr;
  auto status = std::make_shared<absl::Status>();
  std::function<void()> run =
      connection_->Bind([done = std::move(done), status] { done(*status); });
  return [run = std::move(run), status](absl::Status s) {
    *status = std::move(s);
    run();
  };
}

void Consumer::GroupAdd(const std::string& group, Done done) {
  groups_.insert(group);
  layer_->GroupAdd(group, channel_, OnLoop(std::move(done)));
}

void Consumer::GroupDiscard(const std::string& group) {
  groups_.erase(group);
  layer_->GroupDiscard(group, channel_);
}

void Consumer::GroupSend(const std::string& group, LayerEventPtr event, Done done) {
  layer_->GroupSend(group, std::move(event), OnLoop(std::move(done)));
}

void Consumer::SendTo(const std::string& channel, LayerEventPtr event, Done done) {
  layer_->Send(channel, std::move(event), OnLoop(std::move(done)));
}

void Consumer::LeaveGroups() {
  for (const std::string& group : groups_) layer_->GroupDiscard(group, channel_);
  groups_.clear();
}

}  // namespace edge

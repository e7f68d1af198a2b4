#include "groupsvc/forwarder.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "groupsvc/self_owned.h"

namespace groupsvc {
namespace {

constexpr char kForwardedKey[] = "x-groupsvc-forwarded";
// The longest a shard waits for another's part of a listing.
constexpr auto kAskTimeout = std::chrono::seconds(5);

}  // namespace

// One forwarded call: the caller's reactor, finished with the owner's answer.
class Forwarder::ForwardCall : public grpc::ServerUnaryReactor, public SelfOwned<ForwardCall> {
 public:
  void Start(grpc::GenericStub* stub, const std::string& method, const grpc::ByteBuffer* request,
             grpc::ByteBuffer* response) {
    stub->UnaryCall(
        &client_, method, grpc::StubOptions(), request, response,
        [self = shared_from_this()](grpc::Status status) { self->Finish(std::move(status)); });
  }
  grpc::ClientContext* client() { return &client_; }

 private:
  void OnCancel() override { client_.TryCancel(); }
  void OnDone() override { Release(); }

  grpc::ClientContext client_;
};

Forwarder::Forwarder(const ShardMap* shards,
                     const std::shared_ptr<grpc::ChannelCredentials>& credentials)
    : shards_(shards) {
  for (uint32_t i = 0; i < shards->addresses().size(); ++i) {
    if (i == shards->self()) {
      stubs_.push_back(nullptr);
      continue;
    }
    stubs_.push_back(std::make_unique<grpc::GenericStub>(
        grpc::CreateChannel(shards->addresses()[i], credentials)));
  }
}

bool Forwarder::IsForwarded(const grpc::CallbackServerContext& context) {
  return context.client_metadata().count(kForwardedKey) > 0;
}

void Forwarder::Prepare(const grpc::CallbackServerContext& caller,
                        grpc::ClientContext* context) const {
  for (const auto& [key, value] : caller.client_metadata()) {
    if (key == "authorization")
      context->AddMetadata("authorization", std::string(value.data(), value.size()));
  }
  context->AddMetadata(kForwardedKey, absl::StrCat(shards_->self()));
  context->set_deadline(caller.deadline());
}

grpc::ServerUnaryReactor* Forwarder::Forward(uint32_t owner, const std::string& method,
                                             grpc::CallbackServerContext* context,
                                             const grpc::ByteBuffer* request,
                                             grpc::ByteBuffer* response) {
  auto call = ForwardCall::Make();
  Prepare(*context, call->client());
  call->Start(stubs_[owner].get(), method, request, response);
  return call.get();
}

void Forwarder::AskOthers(const std::string& method, grpc::CallbackServerContext* context,
                          const grpc::ByteBuffer& request, std::function<void(Answers)> done) {
  struct Round {
    absl::Mutex mu;
    std::vector<grpc::ByteBuffer> answers;
    std::vector<std::unique_ptr<grpc::ClientContext>> contexts;
    grpc::ByteBuffer request;
    size_t pending = 0;
    absl::Status failure;
    std::function<void(Answers)> done;
  };
  auto round = std::make_shared<Round>();
  round->answers.resize(stubs_.size());
  round->request = request;
  round->done = std::move(done);
  round->pending = stubs_.size() - 1;
  for (size_t i = 0; i < stubs_.size(); ++i) {
    round->contexts.push_back(std::make_unique<grpc::ClientContext>());
    if (stubs_[i] == nullptr) continue;
    Prepare(*context, round->contexts[i].get());
    round->contexts[i]->set_deadline(
        std::min(context->deadline(), std::chrono::system_clock::now() + kAskTimeout));
  }
  if (round->pending == 0) {
    round->done(std::move(round->answers));
    return;
  }
  for (size_t i = 0; i < stubs_.size(); ++i) {
    if (stubs_[i] == nullptr) continue;
    stubs_[i]->UnaryCall(
        round->contexts[i].get(), method, grpc::StubOptions(), &round->request, &round->answers[i],
        [round, i, address = shards_->addresses()[i]](grpc::Status status) {
          bool last;
          {
            absl::MutexLock lock(&round->mu);
            if (!status.ok() && round->failure.ok()) {
              round->failure =
                  absl::Status(static_cast<absl::StatusCode>(status.error_code()),
                               absl::StrCat("shard ", i, " (", address,
                                            ") did not answer: ", status.error_message()));
            }
            last = --round->pending == 0;
          }
          if (!last) return;
          if (!round->failure.ok()) {
            round->done(round->failure);
          } else {
            round->done(std::move(round->answers));
          }
        });
  }
}

}  // namespace groupsvc

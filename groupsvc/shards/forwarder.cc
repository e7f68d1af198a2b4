#include "groupsvc/shards/forwarder.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"

namespace groupsvc {
namespace {

constexpr char kForwardedKey[] = "x-groupsvc-forwarded";
// The longest a shard waits for another's part of a listing.
constexpr auto kAskTimeout = std::chrono::seconds(5);

std::shared_ptr<UnaryCall> Hold(UnaryCall* call) {
  return std::static_pointer_cast<UnaryCall>(call->shared_from_this());
}

}  // namespace

// One forwarded call: the caller's call, answered with the owner's answer.
class Forwarder::ForwardCall final : public Call {
 public:
  explicit ForwardCall(UnaryCall* caller) : Call(caller->loop()), caller_(Hold(caller)) {}
  grpc::ClientContext* client() { return &client_; }

  void Start(grpc::GenericStub* stub, const std::string& method) {
    reader_ = stub->PrepareUnaryCall(&client_, method, caller_->request(), loop()->cq());
    reader_->StartCall();
    reader_->Finish(&response_, &status_, answered_.Tag());
    std::shared_ptr<ForwardCall> self = std::static_pointer_cast<ForwardCall>(shared_from_this());
    caller_->OnCancel([self] { self->client_.TryCancel(); });
  }

  void OnComplete(Op*, bool) override {
    caller_->ReplyRaw(status_, response_);
    caller_.reset();
  }

 private:
  std::shared_ptr<UnaryCall> caller_;  // Until answered.
  grpc::ClientContext client_;
  std::unique_ptr<grpc::GenericClientAsyncResponseReader> reader_;
  grpc::ByteBuffer response_;
  grpc::Status status_;
  Op answered_{this};
};

// One call to every other shard, answered when the last of them is.
class Forwarder::AskRound final : public Call {
 public:
  AskRound(CompletionLoop* loop, size_t shards, std::function<void(Answers)> done)
      : Call(loop), answers_(shards), done_(std::move(done)) {
    for (size_t i = 0; i < shards; ++i) asks_.push_back(std::make_unique<Slot>(this));
  }

  // Asks shard `index` (called for each other shard, then Finish()).
  void Ask(size_t index, const std::string& address, grpc::GenericStub* stub,
           const std::string& method, const grpc::ByteBuffer& request,
           const std::function<void(grpc::ClientContext*)>& prepare) {
    Slot& ask = *asks_[index];
    ask.address = address;
    prepare(&ask.context);
    ask.reader = stub->PrepareUnaryCall(&ask.context, method, request, loop()->cq());
    ask.reader->StartCall();
    ask.reader->Finish(&answers_[index], &ask.status, ask.answered.Tag());
    ++pending_;
  }
  void FinishIfNoneAsked() {
    if (pending_ == 0) done_(std::move(answers_));
  }

  void OnComplete(Op* op, bool) override {
    for (size_t i = 0; i < asks_.size(); ++i) {
      const Slot& ask = *asks_[i];
      if (&ask.answered != op) continue;
      if (!ask.status.ok() && failure_.ok()) {
        failure_ = absl::Status(static_cast<absl::StatusCode>(ask.status.error_code()),
                                absl::StrCat("shard ", i, " (", ask.address,
                                             ") did not answer: ", ask.status.error_message()));
      }
    }
    if (--pending_ > 0) return;
    if (!failure_.ok()) {
      done_(failure_);
    } else {
      done_(std::move(answers_));
    }
  }

 private:
  struct Slot {
    explicit Slot(Call* round) : answered(round) {}
    std::string address;
    grpc::ClientContext context;
    std::unique_ptr<grpc::GenericClientAsyncResponseReader> reader;
    grpc::Status status;
    Op answered;
  };

  std::vector<grpc::ByteBuffer> answers_;
  std::vector<std::unique_ptr<Slot>> asks_;
  std::function<void(Answers)> done_;
  // Loop thread only (asked and answered there).
  size_t pending_ = 0;
  absl::Status failure_;
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

bool Forwarder::IsForwarded(const grpc::ServerContextBase& context) {
  return context.client_metadata().count(kForwardedKey) > 0;
}

void Forwarder::Prepare(const grpc::ServerContextBase& caller, grpc::ClientContext* context) const {
  for (const auto& [key, value] : caller.client_metadata()) {
    if (key == "authorization")
      context->AddMetadata("authorization", std::string(value.data(), value.size()));
  }
  context->AddMetadata(kForwardedKey, absl::StrCat(shards_->self()));
  context->set_deadline(caller.deadline());
}

void Forwarder::Forward(uint32_t owner, const std::string& method, UnaryCall* call) {
  auto forward = std::make_shared<ForwardCall>(call);
  Prepare(call->context(), forward->client());
  forward->Start(stubs_[owner].get(), method);
}

void Forwarder::AskOthers(const std::string& method, UnaryCall* call,
                          std::function<void(Answers)> done) {
  auto round = std::make_shared<AskRound>(call->loop(), stubs_.size(), std::move(done));
  const grpc::ServerContext& caller = call->context();
  for (size_t i = 0; i < stubs_.size(); ++i) {
    if (stubs_[i] == nullptr) continue;
    round->Ask(i, shards_->addresses()[i], stubs_[i].get(), method, call->request(),
               [&](grpc::ClientContext* context) {
                 Prepare(caller, context);
                 context->set_deadline(
                     std::min(caller.deadline(), std::chrono::system_clock::now() + kAskTimeout));
               });
  }
  round->FinishIfNoneAsked();
}

}  // namespace groupsvc

// SelfOwned: the one lifetime of every gRPC reactor in groupsvc.
//
// A reactor is made by Make(), which hands gRPC the raw pointer it wants while
// the object keeps itself alive through its own shared_ptr, until gRPC calls
// OnDone, whose last step is Release(). Everything else that may call into a
// reactor later (the registry's edge directory, a timer, the health service's
// watcher list) holds a shared_ptr or weak_ptr to it, so a late call reaches a
// live object that knows it is done, never freed memory. No reactor is
// deleted by `delete this` or by its service.
//
//   class Refused : public grpc::ServerBidiReactor<In, Out>, public SelfOwned<Refused> {
//     void OnDone() override { Release(); }
//   };
//   auto r = SelfOwned<Refused>::Make();  r->Finish(status);  return r.get();
#ifndef CHAT_GROUPSVC_SELF_OWNED_H_
#define CHAT_GROUPSVC_SELF_OWNED_H_

#include <grpcpp/grpcpp.h>

#include <memory>
#include <utility>

namespace groupsvc {

template <class T>
class SelfOwned : public std::enable_shared_from_this<T> {
 public:
  template <class... Args>
  static std::shared_ptr<T> Make(Args&&... args) {
    auto reactor = std::make_shared<T>(std::forward<Args>(args)...);
    reactor->self_ = reactor;
    return reactor;
  }

 protected:
  // The last step of OnDone: may destroy the object.
  void Release() { std::shared_ptr<T> keep = std::move(self_); }

 private:
  std::shared_ptr<T> self_;
};

// A call refused before it started: finishes at once with `status`.
template <class Reactor>
class Refused : public Reactor, public SelfOwned<Refused<Reactor>> {
 public:
  static Reactor* Start(grpc::Status status) {
    auto reactor = SelfOwned<Refused>::Make();
    reactor->Finish(std::move(status));
    return reactor.get();
  }
  void OnDone() override { this->Release(); }
};

}  // namespace groupsvc

#endif  // CHAT_GROUPSVC_SELF_OWNED_H_

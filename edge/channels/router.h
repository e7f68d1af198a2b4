// Router: maps WebSocket paths to consumers, like Channels' URLRouter.
// A pattern is a path whose "{name}" segments capture one or more ASCII word
// characters ([A-Za-z0-9_], the tutorial's \w+) into the scope's url_route.
//
//   Router router;
//   router.Add("/ws/chat/{room_name}/", [] { return std::make_unique<ChatConsumer>(); },
//              [](const Router::Captures& c) { return c.at("room_name").size() < 90; });
//   std::optional<Router::Match> m = router.Find("/ws/chat/lobby/");
#ifndef CHAT_EDGE_CHANNELS_ROUTER_H_
#define CHAT_EDGE_CHANNELS_ROUTER_H_

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "edge/channels/consumer.h"

namespace edge {

class Router {
 public:
  using Factory = std::function<std::unique_ptr<Consumer>()>;
  using Captures = absl::flat_hash_map<std::string, std::string>;
  // Further checks of a match's captures; false refuses it (404).
  using Validator = std::function<bool(const Captures&)>;
  struct Match {
    const Factory* factory;
    Captures captures;
  };

  void Add(const std::string& pattern, Factory factory, Validator validator = nullptr);
  // The first route whose pattern matches the whole (decoded) path.
  std::optional<Match> Find(const std::string& path) const;

 private:
  struct Route {
    std::vector<std::string> segments;  // "{name}" captures
    Factory factory;
    Validator validator;
  };
  std::vector<Route> routes_;
};

}  // namespace edge

#endif  // CHAT_EDGE_CHANNELS_ROUTER_H_

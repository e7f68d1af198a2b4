#include "edge/server.h"

#include <unistd.h>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/post.hpp>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "edge/chat_consumer.h"
#include "edge/grpc_layer.h"
#include "edge/memory_layer.h"
#include "shared/log.h"
#include "shared/names.h"

namespace edge {

namespace net = boost::asio;

namespace {

absl::StatusOr<net::ip::tcp::endpoint> ParseEndpoint(const std::string& hostport) {
  const size_t colon = hostport.rfind(':');
  int port = -1;
  if (colon == std::string::npos || !absl::SimpleAtoi(hostport.substr(colon + 1), &port) ||
      port < 0 || port > 65535) {
    return absl::InvalidArgumentError(absl::StrCat("expected HOST:PORT, got \"", hostport, "\""));
  }
  std::string host = hostport.substr(0, colon);
  if (host.size() > 1 && host.front() == '[') host = host.substr(1, host.size() - 2);
  boost::system::error_code ec;
  auto address = net::ip::make_address(host.empty() ? "0.0.0.0" : host, ec);
  if (ec) return absl::InvalidArgumentError(absl::StrCat("not an IP address: \"", host, "\""));
  return net::ip::tcp::endpoint(address, static_cast<unsigned short>(port));
}

std::string HostName() {
  char name[256] = {};
  gethostname(name, sizeof(name) - 1);
  std::string out;
  for (char c : std::string(name)) {
    out.push_back((isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.') ? c : '-');
  }
  return out.empty() ? "edge" : out;
}

}  // namespace

EdgeServer::EdgeServer(EdgeServerOptions options)
    : options_(std::move(options)), ioc_(std::max(1, options_.threads)) {}

absl::StatusOr<std::unique_ptr<EdgeServer>> EdgeServer::Start(EdgeServerOptions options) {
  if (options.edge_id.empty()) options.edge_id = HostName();
  if (absl::Status s = chat::ValidateGroupName(options.edge_id); !s.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("--edge_id: ", s.message()));
  }
  absl::StatusOr<net::ip::tcp::endpoint> endpoint = ParseEndpoint(options.listen);
  if (!endpoint.ok()) return endpoint.status();

  std::unique_ptr<EdgeServer> s(new EdgeServer(std::move(options)));
  if (s->options_.groupsvc.empty()) {
    s->layer_ = std::make_unique<MemoryLayer>(absl::StrCat(s->options_.edge_id, "!"));
  } else {
    auto grpc_layer = std::make_unique<GrpcLayer>(GrpcLayerOptions{
        .target = s->options_.groupsvc,
        .edge_id = s->options_.edge_id,
        .io_post = [ioc = &s->ioc_](std::function<void()> fn) { net::post(*ioc, std::move(fn)); }});
    grpc_layer->Start();
    s->layer_ = std::move(grpc_layer);
  }
  s->router_.Add(
      "/ws/chat/{room_name}/", [] { return std::make_unique<ChatConsumer>(); },
      [](const Router::Captures& c) {
        return chat::ValidateGroupName(ChatConsumer::GroupFor(c.at("room_name"))).ok();
      });
  s->router_.Add("/ws/echo/", [] { return std::make_unique<EchoConsumer>(); });
  Layer* layer = s->layer_.get();
  s->metrics_ = std::make_unique<EdgeMetrics>([layer] { return layer->ready(); },
                                              [layer] { return layer->local_groups(); });
  s->context_.options = s->options_.edge;
  s->context_.layer = layer;
  s->context_.router = &s->router_;
  s->context_.metrics = s->metrics_.get();
  if (s->options_.threads <= 1) s->context_.serial_ioc = &s->ioc_;

  absl::StatusOr<std::shared_ptr<Listener>> listener =
      Listener::Bind(s->ioc_, *endpoint, &s->context_);
  if (!listener.ok()) return listener.status();
  s->listener_ = *std::move(listener);
  s->listener_->Run();
  for (int i = 0; i < std::max(1, s->options_.threads); ++i) {
    s->threads_.emplace_back([ioc = &s->ioc_] {
      auto work = net::make_work_guard(*ioc);
      ioc->run();
    });
  }
  return s;
}

EdgeServer::~EdgeServer() { Shutdown(absl::ZeroDuration()); }

void EdgeServer::Shutdown(absl::Duration grace) {
  if (stopped_) return;
  stopped_ = true;
  const absl::Time deadline = absl::Now() + grace;
  context_.shutting_down = true;
  if (listener_) listener_->Stop();
  context_.sessions.CloseAll(kCloseGoingAway);
  while (context_.sessions.size() > 0 && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(10));
  }
  // Give the layer a moment to send the group_discards of the closed sessions.
  if (auto* grpc_layer = dynamic_cast<GrpcLayer*>(layer_.get())) {
    absl::SleepFor(
        std::min(absl::Milliseconds(100), std::max(absl::ZeroDuration(), deadline - absl::Now())));
    grpc_layer->Stop();
  }
  ioc_.stop();
  for (auto& t : threads_) t.join();
  threads_.clear();
}

}  // namespace edge

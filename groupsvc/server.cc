#include "groupsvc/server.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "shared/log.h"

namespace groupsvc {
namespace {

const chat::Clock* DefaultClock() {
  static const chat::RealClock* clock = new chat::RealClock();
  return clock;
}

int Millis(absl::Duration d) { return static_cast<int>(absl::ToInt64Milliseconds(d)); }

}  // namespace

GroupServer::GroupServer(ServerOptions options, const chat::Clock* clock)
    : options_(std::move(options)),
      clock_(clock),
      registry_(options_.registry, clock_),
      service_(&registry_, &timers_, options_.attach, clock_) {}

GroupServer::~GroupServer() {
  Shutdown(absl::ZeroDuration());
  Wait();
}

absl::StatusOr<std::unique_ptr<GroupServer>> GroupServer::Start(ServerOptions options,
                                                                const chat::Clock* clock) {
  std::unique_ptr<GroupServer> s(
      new GroupServer(std::move(options), clock ? clock : DefaultClock()));
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  builder.AddListeningPort(s->options_.listen, grpc::InsecureServerCredentials(), &s->port_);
  builder.RegisterService(&s->service_);
  builder.RegisterService(&s->health_);
  // Room for a batch of commands around the largest event; the registry refuses
  // an oversized event itself, with a message that says so.
  builder.SetMaxReceiveMessageSize(static_cast<int>(
      std::max<size_t>(4 << 20, 2 * s->options_.registry.max_event_bytes + (64 << 10))));
  // A second server on a busy port must fail, not share it.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIME_MS, Millis(s->options_.keepalive_time));
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, Millis(s->options_.keepalive_timeout));
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS, 1000);
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MAX_PING_STRIKES, 0);
  s->server_ = builder.BuildAndStart();
  if (s->server_ == nullptr || s->port_ == 0) {
    return absl::UnavailableError(absl::StrCat("cannot listen on ", s->options_.listen));
  }
  if (!s->options_.metrics_listen.empty()) {
    try {
      s->exposer_ = std::make_unique<prometheus::Exposer>(s->options_.metrics_listen);
    } catch (const std::exception& e) {
      s->server_->Shutdown();
      return absl::UnavailableError(
          absl::StrCat("cannot serve metrics on ", s->options_.metrics_listen, ": ", e.what()));
    }
    s->collector_ = std::make_shared<RegistryCollector>(&s->registry_, &s->service_.streams());
    s->exposer_->RegisterCollectable(s->collector_);
    std::vector<int> ports = s->exposer_->GetListeningPorts();
    s->metrics_port_ = ports.empty() ? 0 : ports.front();
  }
  s->ScheduleSweep();
  return s;
}

void GroupServer::ScheduleSweep() {
  timers_.Schedule(absl::Now() + options_.sweep_interval, [this] {
    if (shut_down_) return;
    registry_.Sweep();
    ScheduleSweep();
  });
}

void GroupServer::Shutdown(absl::Duration grace) {
  if (server_ == nullptr || shut_down_.exchange(true)) return;
  const absl::Time deadline = absl::Now() + grace;
  health_.SetServing(false);
  service_.Drain(grace);
  while (service_.attached_streams() > 0 && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(10));
  }
  chat::LogEvent("streams_drained", {{"left", absl::StrCat(service_.attached_streams())}});
  health_.Shutdown();
  // Our streams are gone; what is left are short unary calls and waiting
  // Receives. gRPC would also wait for idle clients to drop their connections
  // after its GOAWAY, which they need not do, so give in-flight calls at most a
  // second before they are cancelled.
  server_->Shutdown(absl::ToChronoTime(std::min(deadline, absl::Now() + absl::Seconds(1))));
  chat::LogEvent("server_shutdown");
}

void GroupServer::Wait() {
  if (server_ != nullptr) server_->Wait();
}

}  // namespace groupsvc

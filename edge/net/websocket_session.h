// WebSocketSession: one browser WebSocket, after its upgrade request was
// routed to a consumer. Runs the consumer's lifecycle, reads frames, and owns a
// bounded outgoing queue with one write in flight.
//
// The handshake waits for the consumer: Accept() completes it (Beast writes
// the 101), Close() before that refuses it with HTTP 403 (as in Channels).
// After the handshake the session frames by itself (edge/net/ws_frame.h): it reads
// into its I/O thread's buffer only once the socket is readable, so an idle
// connection holds no buffer, and every frame queued since the last write goes
// out in one write. A client that stopped reading (its queue passes its bound,
// or a write stays in flight past the write timeout, see SessionSet) is closed
// with 1013: its queue is dropped, the kernel's send buffer is widened just
// enough for the write in flight and the last frames, and the socket is cut
// once that is written (at most two seconds later): a reader that resumes
// still reads 1013, and the edge holds nothing for it meanwhile. The kernel
// send buffer is capped (EdgeOptions::socket_send_buffer) so that a stalled
// reader is noticed in seconds. Protocol errors close with 1002, invalid
// UTF-8 with 1007, oversized messages with 1009, a frame that takes longer
// than the frame timeout with 1008. Every close the edge starts says why in
// its reason (CloseExplained, or an operator's words), after the consumer's
// farewell frame (Consumer::Farewell: the tutorial's page prints it). Only
// whole frames count as hearing from the client for the idle timeout.
//
//   std::make_shared<WebSocketSession>(std::move(socket), loop, std::move(request), early_bytes,
//                                      std::move(consumer), std::move(scope), context)->Run();
//
// Threading: everything runs on loop `loop` of the edge's IoPool (the socket's
// io_context, one thread), so nothing here is locked; the layer calls OnEvent
// there too (the channel is registered with the loop). Bind, CloseFromOutside
// and CloseIfWritingSince post onto it from any thread.
//
// Lifetime (the edge's one idiom, shared ownership): each operation in flight
// (the readiness wait, a write, the timer's wait, a post) holds the session
// through its handler's shared_from_this(); while the consumer decides
// whether to accept, the handshake timer's wait holds it. SessionSet and the
// layer hold weak references only.
#ifndef CHAT_EDGE_NET_WEBSOCKET_SESSION_H_
#define CHAT_EDGE_NET_WEBSOCKET_SESSION_H_

#include <atomic>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "edge/channels/consumer.h"
#include "edge/net/edge_context.h"
#include "edge/net/ws_frame.h"

namespace edge {

class WebSocketSession : public std::enable_shared_from_this<WebSocketSession>,
                         public ChannelSink,
                         public Connection {
 public:
  // `early_bytes`: whatever the client sent after its upgrade request.
  WebSocketSession(boost::asio::ip::tcp::socket&& socket, size_t loop,
                   boost::beast::http::request<boost::beast::http::string_body> request,
                   std::string early_bytes, std::unique_ptr<Consumer> consumer, Scope scope,
                   std::shared_ptr<EdgeContext> context, Admission::Ticket ticket);
  ~WebSocketSession() override;

  void Run();
  // From any thread: closes the connection with `code` (shutdown uses 1001).
  void CloseFromOutside(uint16_t code);
  // From any thread: closes with 1013 if a write is still in flight since
  // before `cutoff`.
  void CloseIfWritingSince(std::chrono::steady_clock::time_point cutoff);
  // From any thread: closes with 4001 if the user's token has expired by `now`.
  void CloseIfExpired(absl::Time now);
  // Any thread: when the user's token expires (InfiniteFuture: anonymous).
  absl::Time expires() const { return expires_; }
  // Any thread: when the write in flight started; nullopt if none.
  std::optional<std::chrono::steady_clock::time_point> writing_since() const;

  // ChannelSink: on the session's loop.
  void OnEvent(const LayerEventPtr& event) override;
  void OnClose(uint16_t code, const std::string& reason) override;

  // Connection: on the session's loop.
  void Accept(const std::string& subprotocol) override;
  void Close(uint16_t code) override;
  void SendFrame(Frame text) override;
  std::function<void()> Bind(std::function<void()> fn) override;
  void CountDrop(const char* reason) override;

 private:
  // kClosing: our close frame is queued or sent, the peer's is awaited.
  // kClosed: the consumer is done; a last close frame may still be going out.
  enum class State { kConnecting, kOpen, kClosing, kClosed };
  // Our close frame: none, queued behind data frames, being written, written.
  enum class CloseFrame { kNone, kQueued, kWriting, kSent };
  // The write side: nothing to write; a write posted behind the loop's
  // current handlers (so that one round's frames leave together); in flight.
  enum class Writer { kIdle, kPosted, kWriting };
  // Idle detection, per tick of half the idle timeout: heard from since the
  // last tick; silent for one tick; a ping due in the next write; pinged (a
  // tick silent after the ping drops the client).
  enum class Liveness { kHeard, kSilent, kPingDue, kPinged };
  // The socket: open; to be cut once the close frame is written; cut.
  enum class Socket { kOpen, kCutAfterClose, kCut };
  struct Upgrade;  // What only the handshake needs.

  void OnAccept(boost::system::error_code ec);
  // The layer counted the user's connection (or could not): the consumer
  // connects, or the upgrade is refused with 429 when the user is at its cap.
  void OnUserCounted(const absl::Status& status);
  // Refuses the handshake with an HTTP status (the consumer's Close: 403).
  void Refuse(boost::beast::http::status status, std::string body);
  void DoRead();
  void OnReadable(boost::system::error_code ec);
  // Parses carry_ + data[0, size); false once reading should stop.
  bool Consume(char* data, size_t size);
  bool OnInput(const WsInput& in);
  // Ends the consumer's life with `code`, sends a close frame with it (unless
  // ours is already out), then cuts the socket: for errors and peer closes.
  // Only a close the edge starts gets the consumer's farewell.
  enum class Initiator { kEdge, kPeer };
  void CloseAndCut(uint16_t code, Initiator by = Initiator::kEdge);
  // The consumer's farewell (Consumer::Farewell); sets the close frame's
  // reason (an operator's, else CloseExplained(code)).
  std::string Farewell(uint16_t code);
  // Queues the last frame before the close frame (nothing if empty).
  void QueueLast(std::string last);
  // A reader that stopped reading: see the header comment.
  void CloseSlowReader(const char* reason);
  void ScheduleWrite();
  void DoWrite();
  void OnWrite(boost::system::error_code ec);
  void ArmTimer(std::chrono::steady_clock::duration after);
  void OnTimer();
  // Drops every queued data frame.
  void DropQueued();
  // Ends the consumer's life once: Disconnect, leave groups, unregister.
  void Finish(uint16_t code);
  // Closes the socket; pending operations end with errors.
  void Cut();
  void SetCloseUnsent(bool unsent);

  boost::asio::ip::tcp::socket socket_;
  const size_t loop_;
  std::unique_ptr<Upgrade> upgrade_;
  std::unique_ptr<Consumer> consumer_;
  const std::shared_ptr<EdgeContext> context_;
  Admission::Ticket ticket_;
  std::string channel_;
  std::string peer_;
  // Handshake deadline, then idle pings, then the deadline of a close.
  boost::asio::steady_timer timer_;

  FrameParser parser_;
  std::string carry_;  // The start of a frame not yet all received.
  // When the frame or fragmented message being received began arriving.
  std::optional<std::chrono::steady_clock::time_point> partial_since_;
  Liveness liveness_ = Liveness::kHeard;

  std::vector<Frame> queue_;
  size_t queue_bytes_ = 0;
  std::string out_;  // The bytes of the write in flight.
  size_t out_frames_ = 0;
  std::optional<std::string> pong_;  // For the latest ping only (RFC 6455 5.5.3).
  State state_ = State::kConnecting;
  uint16_t close_code_ = kCloseNormal;
  std::string close_reason_;          // Sent with close_code_: an operator's words, or ours.
  Writer writer_ = Writer::kWriting;  // The handshake is written first.
  CloseFrame close_frame_ = CloseFrame::kNone;
  Socket socket_state_ = Socket::kOpen;
  // Whether our close frame is due but not yet handed to the kernel; set
  // from any thread through SetCloseUnsent, which keeps SessionSet's count.
  std::atomic<bool> close_unsent_{false};
  std::atomic<int64_t> writing_since_ns_{0};  // steady_clock; 0: no write in flight.
  const absl::Time expires_;                  // The scope's user_expires.
};

}  // namespace edge

#endif  // CHAT_EDGE_NET_WEBSOCKET_SESSION_H_

// http_upgrade_fuzz: the edge's HTTP request path up to the WebSocket upgrade
// (edge/http_session.cc) on the bytes a hostile client may send.
//
// Input: [max chunk] then the bytes of one connection. Requests are parsed as
// HttpSession does (Beast's http::request_parser<string_body>, header and body
// limits of 16 KiB, a fresh parser per request on the same buffer, the bytes
// arriving in chunks of 1..max chunk). For each whole request:
//   - the body is within the limit;
//   - boost::urls::parse_origin_form of the target, then edge::Router::Find
//     with the edge's routes (edge/server.cc) matches exactly the paths the
//     README promises: "/ws/echo/" and "/ws/chat/<room>/" with <room> made of
//     ASCII word characters and "chat_<room>" a valid group name, and nothing
//     else (everything else is a 404 before the upgrade);
//   - edge::ValidWebSocketKey is exactly "16 bytes in base64" (a reference
//     decoder: decoded and encoded again, the key gives itself back);
//   - edge::HostAllowed and edge::OriginAllowed decide as their header
//     documents (a reference implementation written from http_session.h:
//     an exact http(s)://host[:port] Origin, the same host and port as the
//     Host header, "*", an exact origin or ".domain"; Django's ALLOWED_HOSTS
//     for Host), for the edge's default lists and a few others, including
//     lists made of the request's own Host and Origin.
// A crash means a parser or the routing/origin decision broke one of these
// (or ASan/UBSan found a memory error or undefined behaviour on the way).
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket/rfc6455.hpp>
#include <boost/url/parse.hpp>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "edge/channels/router.h"
#include "edge/chat/chat_consumer.h"
#include "edge/net/edge_context.h"
#include "edge/net/http_session.h"
#include "shared/names.h"
#include "tests/fuzz/fuzz_check.h"

namespace {

namespace beast = boost::beast;
namespace http = beast::http;

// As HttpSession::DoRead.
constexpr size_t kHeaderLimit = 16 << 10;
constexpr size_t kBodyLimit = 16 << 10;

enum class Route { kNone, kChat, kEcho };
Route g_matched = Route::kNone;

// The edge's routes, as edge/server.cc adds them (the factories record which
// route matched instead of making a consumer).
const edge::Router& EdgeRouter() {
  static const edge::Router* router = [] {
    auto* r = new edge::Router;
    r->Add(
        "/ws/chat/{room_name}/",
        [] {
          g_matched = Route::kChat;
          return std::unique_ptr<edge::Consumer>();
        },
        [](const edge::Router::Captures& c) {
          return chat::ValidateGroupName(edge::ChatConsumer::GroupFor(c.at("room_name"))).ok();
        });
    r->Add("/ws/echo/", [] {
      g_matched = Route::kEcho;
      return std::unique_ptr<edge::Consumer>();
    });
    return r;
  }();
  return *router;
}

bool IsWord(const std::string& s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '_') return false;
  }
  return true;
}

void CheckRoute(const std::string& path) {
  // What the README promises, written independently of the router.
  Route want = Route::kNone;
  std::string room;
  if (path == "/ws/echo/") {
    want = Route::kEcho;
  } else if (absl::StartsWith(path, "/ws/chat/") && absl::EndsWith(path, "/") && path.size() > 10) {
    room = path.substr(9, path.size() - 10);
    if (IsWord(room) && 5 + room.size() <= chat::kMaxNameLength) want = Route::kChat;
  }
  g_matched = Route::kNone;
  const std::optional<edge::Router::Match> match = EdgeRouter().Find(path);
  if (match.has_value()) (*match->factory)();
  FUZZ_CHECK(g_matched == want);
  if (want == Route::kChat) {
    FUZZ_CHECK(match->captures.size() == 1 && match->captures.at("room_name") == room);
  } else if (want == Route::kEcho) {
    FUZZ_CHECK(match->captures.empty());
  }
}

// The calls of the upgrade checks, in one place: adapt here when they change.
bool OriginOk(const std::string& origin, const std::string& host,
              const std::vector<std::string>& allowed) {
  return edge::OriginAllowed(origin, host, allowed);
}
bool HostOk(const std::string& host, const std::vector<std::string>& allowed) {
  return edge::HostAllowed(host, allowed);
}
bool KeyOk(std::string_view key) { return edge::ValidWebSocketKey(key); }

// A reference reading of the header's documented grammar, written apart from
// edge/http_session.cc: host = 1* (ASCII letter, digit, '-', '.', '_') or
// "[" 1* (hex digit, ':', '.') "]" (IPv6 literals are read loosely), then
// optionally ":" and 1 to 5 digits naming a port in 1..65535. Lower-case;
// port 0 when none is given.
struct RefAuthority {
  std::string host;
  int port = 0;
};
std::optional<RefAuthority> RefParseAuthority(std::string_view text) {
  RefAuthority a;
  size_t i = 0;
  if (!text.empty() && text[0] == '[') {
    const size_t close = text.find(']');
    if (close == std::string_view::npos || close == 1) return std::nullopt;
    for (i = 1; i < close; ++i) {
      const char c = text[i];
      if (!absl::ascii_isxdigit(static_cast<unsigned char>(c)) && c != ':' && c != '.') {
        return std::nullopt;
      }
    }
    i = close + 1;
  } else {
    while (i < text.size() && (absl::ascii_isalnum(static_cast<unsigned char>(text[i])) ||
                               text[i] == '-' || text[i] == '.' || text[i] == '_')) {
      ++i;
    }
    if (i == 0) return std::nullopt;
  }
  a.host = absl::AsciiStrToLower(std::string(text.substr(0, i)));
  if (i == text.size()) return a;
  if (text[i] != ':') return std::nullopt;
  const std::string_view digits = text.substr(i + 1);
  if (digits.empty() || digits.size() > 5) return std::nullopt;
  for (char c : digits) {
    if (!absl::ascii_isdigit(static_cast<unsigned char>(c))) return std::nullopt;
    a.port = a.port * 10 + (c - '0');
  }
  if (a.port < 1 || a.port > 65535) return std::nullopt;
  return a;
}

// An origin: "http" or "https" (any case) "://" authority; the port filled in.
struct RefOrigin {
  std::string scheme;
  RefAuthority authority;
};
std::optional<RefOrigin> RefParseOrigin(std::string_view text) {
  const size_t sep = text.find("://");
  if (sep == std::string_view::npos) return std::nullopt;
  RefOrigin o{absl::AsciiStrToLower(std::string(text.substr(0, sep))), {}};
  if (o.scheme != "http" && o.scheme != "https") return std::nullopt;
  std::optional<RefAuthority> a = RefParseAuthority(text.substr(sep + 3));
  if (!a.has_value()) return std::nullopt;
  o.authority = *a;
  if (o.authority.port == 0) o.authority.port = o.scheme == "https" ? 443 : 80;
  return o;
}

// A host name against one allowed entry: "*", ".domain" or an exact name.
bool RefNameMatches(const std::string& host, const std::string& entry) {
  if (entry == "*") return true;
  const std::string e = absl::AsciiStrToLower(entry);
  if (!e.empty() && e[0] == '.') {
    return host == e.substr(1) || (host.size() > e.size() && absl::EndsWith(host, e));
  }
  return host == e;
}

bool RefOriginAllowed(const std::string& origin, const std::string& host,
                      const std::vector<std::string>& allowed) {
  if (origin.empty()) return true;
  const std::optional<RefOrigin> o = RefParseOrigin(origin);
  if (!o.has_value()) return false;
  if (std::optional<RefAuthority> own = RefParseAuthority(host)) {
    if (own->host == o->authority.host &&
        (own->port == 0 ? o->authority.port : own->port) == o->authority.port) {
      return true;
    }
  }
  for (const std::string& a : allowed) {
    if (a == "*") return true;
    if (!a.empty() && a[0] == '.') {
      if (RefNameMatches(o->authority.host, a)) return true;
    } else if (std::optional<RefOrigin> want = RefParseOrigin(a)) {
      if (want->scheme == o->scheme && want->authority.host == o->authority.host &&
          want->authority.port == o->authority.port) {
        return true;
      }
    }
  }
  return false;
}

bool RefHostAllowed(const std::string& host, const std::vector<std::string>& allowed) {
  const std::optional<RefAuthority> a = RefParseAuthority(host);
  if (!a.has_value()) return false;
  for (const std::string& entry : allowed) {
    if (RefNameMatches(a->host, entry)) return true;
  }
  return false;
}

// The edge's decisions equal the documented ones, for lists that matter: the
// defaults, "*", an exact origin, a domain, and the request's own values.
void CheckOrigin(const std::string& origin, const std::string& host) {
  std::vector<std::vector<std::string>> lists = {
      {},
      {"*"},
      {"https://chat.example.com"},
      {".example.com"},
      {"http://localhost:8000", ".EXAMPLE.org", "not an origin", ""},
      {origin},
  };
  if (auto o = RefParseOrigin(origin)) lists.push_back({"." + o->authority.host});
  for (const auto& list : lists) {
    FUZZ_CHECK(OriginOk(origin, host, list) == RefOriginAllowed(origin, host, list));
  }
}

void CheckHost(const std::string& host) {
  std::vector<std::vector<std::string>> lists = {
      edge::EdgeOptions().allowed_hosts, {}, {"*"}, {".example.com"}, {"Chat.Example.com", ""},
  };
  if (auto a = RefParseAuthority(host)) lists.push_back({a->host});
  for (const auto& list : lists) FUZZ_CHECK(HostOk(host, list) == RefHostAllowed(host, list));
}

// RFC 6455 4.1: the key is 16 bytes in base64. Decoded and encoded again, a
// valid key gives itself back.
void CheckKey(std::string_view key) {
  static constexpr std::string_view kAlphabet =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  bool valid = key.size() == 24 && key.substr(22) == "==";
  unsigned char bytes[18] = {};
  for (size_t i = 0; valid && i < 22; ++i) {
    const size_t v = kAlphabet.find(key[i]);
    if (v == std::string_view::npos) valid = false;
    for (int b = 0; valid && b < 6; ++b) {
      if ((v >> (5 - b)) & 1) bytes[(i * 6 + b) / 8] |= 0x80 >> ((i * 6 + b) % 8);
    }
  }
  if (valid) {
    std::string again;
    for (size_t i = 0; i < 22; ++i) {
      size_t v = 0;
      for (int b = 0; b < 6; ++b) {
        const size_t bit = i * 6 + b;
        v = (v << 1) | (bit < 128 ? (bytes[bit / 8] >> (7 - bit % 8)) & 1 : 0);
      }
      again.push_back(kAlphabet[v]);
    }
    valid = again == key.substr(0, 22);
  }
  FUZZ_CHECK(KeyOk(key) == valid);
}

void CheckRequest(const http::request<http::string_body>& request) {
  FUZZ_CHECK(request.body().size() <= kBodyLimit);
  auto target = boost::urls::parse_origin_form(request.target());
  if (target) CheckRoute(target->path());
  if (beast::websocket::is_upgrade(request) || request.count(http::field::origin) > 0) {
    const std::string host(request[http::field::host]);
    CheckKey(request[http::field::sec_websocket_key]);
    CheckHost(host);
    CheckOrigin(std::string(request[http::field::origin]), host);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const size_t max_chunk = data[0] == 0 ? size : data[0];
  const std::string input(reinterpret_cast<const char*>(data) + 1, size - 1);
  EdgeRouter();

  std::string buffer;  // As HttpSession's flat_buffer: what is read and not yet parsed.
  size_t fed = 0;
  uint32_t x = data[0];
  for (int requests = 0; requests < 8; ++requests) {
    http::request_parser<http::string_body> parser;
    parser.header_limit(kHeaderLimit);
    parser.body_limit(kBodyLimit);
    parser.eager(true);  // As http::async_read.
    beast::error_code ec;
    while (true) {
      if (!buffer.empty()) {
        const size_t used = parser.put(boost::asio::buffer(buffer), ec);
        FUZZ_CHECK(used <= buffer.size());
        buffer.erase(0, used);
        if (ec == http::error::need_more) {
          ec = {};
        } else if (ec || parser.is_done()) {
          break;
        } else if (used > 0) {
          continue;
        }
      }
      if (fed == input.size()) {
        parser.put_eof(ec);
        break;
      }
      x = x * 1103515245u + 12345u;
      const size_t n = std::min(input.size() - fed, 1 + (x >> 8) % max_chunk);
      buffer.append(input, fed, n);
      fed += n;
    }
    if (ec || !parser.is_done()) return 0;  // HttpSession drops the connection.
    const http::request<http::string_body> request = parser.release();
    CheckRequest(request);
    if (beast::websocket::is_upgrade(request) || !request.keep_alive()) return 0;
  }
  return 0;
}

// Page: an HTTP answer an app serves at a path of the public port (the chat's
// lobby and room pages, edge/chat/pages.h). HttpSession asks the edge's
// PageHandler first, then serves /healthz and /readyz itself; it adds the
// security headers and answers HEAD.
#ifndef CHAT_EDGE_NET_PAGE_H_
#define CHAT_EDGE_NET_PAGE_H_

#include <functional>
#include <optional>
#include <string>

namespace edge {

struct Page {
  int status = 200;
  std::string body;
  std::string content_type = "text/html; charset=utf-8";
  std::string location;  // For a redirect.
};

// nullopt: not a page of the app (HttpSession goes on, or answers 404).
// Thread-safe: called on every I/O thread.
using PageHandler = std::function<std::optional<Page>(const std::string& path)>;

}  // namespace edge

#endif  // CHAT_EDGE_NET_PAGE_H_

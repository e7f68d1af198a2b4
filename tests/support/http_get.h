// A blocking HTTP/1.1 GET for tests (Boost.Beast), e.g. to read /metrics.
//
//   absl::StatusOr<HttpReply> r = HttpGet("127.0.0.1", port, "/metrics");
#ifndef CHAT_TESTS_SUPPORT_HTTP_GET_H_
#define CHAT_TESTS_SUPPORT_HTTP_GET_H_

#include <map>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace chat::testing {

struct HttpReply {
  int status = 0;
  std::map<std::string, std::string> headers;  // Lower-case names.
  std::string body;
};

absl::StatusOr<HttpReply> HttpGet(const std::string& host, int port, const std::string& target,
                                  const std::map<std::string, std::string>& headers = {});

// Polls an edge's /readyz on 127.0.0.1:`port` until it answers 200 (`ready`)
// or anything else (not `ready`); false if that does not happen within `timeout`.
bool WaitReady(int port, bool ready, absl::Duration timeout = absl::Seconds(10));

}  // namespace chat::testing

#endif  // CHAT_TESTS_SUPPORT_HTTP_GET_H_

// Unit tests of groupsvc's security pieces that need no sockets: the tokens
// file format, the edge-id check against certificate names, queue quotas.
#include <memory>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "groupsvc/registry/group_registry.h"
#include "groupsvc/registry/queue_quota.h"
#include "groupsvc/security/api_tokens.h"
#include "groupsvc/security/peer_identity.h"
#include "gtest/gtest.h"

namespace groupsvc {
namespace {

using ::testing::HasSubstr;

TEST(ParseTokensTest, ReadsNamesScopesAndComments) {
  absl::StatusOr<std::vector<TokenEntry>> entries = ParseTokens(
      "# operators\n"
      "ops read,send,admin 0123456789abcdef0123\n"
      "\n"
      "  backend.v2\tsend  backend-token-000001 # the billing backend\n"
      "reader read reader-token-0000001\r\n");
  ASSERT_TRUE(entries.ok()) << entries.status();
  ASSERT_EQ(entries->size(), 3u);
  EXPECT_EQ((*entries)[0].name, "ops");
  EXPECT_EQ((*entries)[0].scopes, kScopeRead | kScopeSend | kScopeAdmin);
  EXPECT_EQ((*entries)[1].name, "backend.v2");
  EXPECT_EQ((*entries)[1].scopes, kScopeSend);
  EXPECT_EQ((*entries)[2].scopes, kScopeRead);
  EXPECT_NE((*entries)[0].digest, (*entries)[1].digest);
  EXPECT_EQ(ScopeNames(kScopeRead | kScopeAdmin), "read,admin");
}

TEST(ParseTokensTest, RefusesBadLinesNamingTheLineNotTheToken) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"a read", "line 1: expected NAME SCOPES TOKEN"},
      {"a read tok tok2", "line 1: expected NAME SCOPES TOKEN"},
      {"\n\na write 0123456789abcdef", "line 3: unknown scope \"write\""},
      {"a read, 0123456789abcdef", "unknown scope \"\""},
      {"a read short", "must be 16 to 512"},
      {"a/b read 0123456789abcdef", "name must be"},
      {"a read 0123456789abcdef\na send 0123456789abcdeg", "line 2: name \"a\" is used twice"},
      {"a read 0123456789abcdef\nb send 0123456789abcdef", "\"b\" has the token of \"a\""},
      {"a read 0123456789abc\x01"
       "def",
       "printable"},
  };
  for (const auto& [text, error] : cases) {
    absl::StatusOr<std::vector<TokenEntry>> entries = ParseTokens(text);
    ASSERT_FALSE(entries.ok()) << text;
    EXPECT_THAT(entries.status().message(), HasSubstr(error)) << text;
    EXPECT_THAT(entries.status().message(), ::testing::Not(HasSubstr("0123456789abc")));
  }
  // '#' ends the line, so a token cannot hold one.
  EXPECT_FALSE(ParseTokens("a read 01234567#89abcdefgh").ok());
}

TEST(EdgeIdAllowedTest, ExactNamesAndOneLabelWildcards) {
  EXPECT_TRUE(EdgeIdAllowed("edge-a", {"edge-a"}));
  EXPECT_TRUE(EdgeIdAllowed("edge-b", {"edge-a", "edge-b"}));
  EXPECT_FALSE(EdgeIdAllowed("edge-a", {}));
  EXPECT_FALSE(EdgeIdAllowed("", {""}));
  EXPECT_FALSE(EdgeIdAllowed("edge-a", {"edge-b"}));
  EXPECT_FALSE(EdgeIdAllowed("Edge-A", {"edge-a"}));
  EXPECT_FALSE(EdgeIdAllowed("edge-a2", {"edge-a"}));
  EXPECT_TRUE(EdgeIdAllowed("pod-1.edge.chat", {"*.edge.chat"}));
  EXPECT_FALSE(EdgeIdAllowed("edge.chat", {"*.edge.chat"}));
  EXPECT_FALSE(EdgeIdAllowed(".edge.chat", {"*.edge.chat"}));
  EXPECT_FALSE(EdgeIdAllowed("a.pod-1.edge.chat", {"*.edge.chat"}));
  EXPECT_FALSE(EdgeIdAllowed("pod-1.edge.chatx", {"*.edge.chat"}));
  EXPECT_FALSE(EdgeIdAllowed("pod-1", {"*"}));
  EXPECT_FALSE(EdgeIdAllowed("pod-1.chat", {"*.chat"}));  // Too broad a wildcard.
  EXPECT_FALSE(EdgeIdAllowed("p.a.chat", {"*.*.chat"}));
  EXPECT_FALSE(EdgeIdAllowed("pod-1.edge.chat", {"pod-*.edge.chat"}));
}

TEST(QueueQuotaTest, ChargesUpToTheLimit) {
  QueueQuota quota("token:t", 100);
  EXPECT_TRUE(quota.TryCharge(60));
  EXPECT_FALSE(quota.TryCharge(41));
  EXPECT_TRUE(quota.TryCharge(40));
  quota.Refund(60);
  EXPECT_EQ(quota.bytes(), 40u);
  QueueQuota unlimited("token:u", 0);
  EXPECT_TRUE(unlimited.TryCharge(size_t{1} << 40));
}

TEST(QueueQuotaTest, TheRegistryRefundsWhatLeavesTheQueue) {
  chat::RealClock clock;
  RegistryOptions options;
  options.warmup = absl::ZeroDuration();
  GroupRegistry registry(options, &clock);
  auto quota = std::make_shared<QueueQuota>("token:t", 0);
  EventPtr event = MakeEvent("chat.message", R"({"type":"chat.message","message":"hi"})");
  ASSERT_TRUE(registry.Send("backend!a", event, quota).ok());
  ASSERT_TRUE(registry.GroupAdd("room", "backend!b").ok());
  ASSERT_TRUE(registry.GroupAdd("room", "backend!c").ok());
  ASSERT_TRUE(registry.GroupSend("room", event, quota).ok());
  EXPECT_EQ(quota->bytes(), 3 * event->ByteSize());
  ASSERT_TRUE(registry.Receive("backend!a").ok());
  EXPECT_EQ(quota->bytes(), 2 * event->ByteSize());
  registry.Flush();
  EXPECT_EQ(quota->bytes(), 0u);
  EXPECT_EQ(registry.Stats().queued_events, 0u);
}

}  // namespace
}  // namespace groupsvc

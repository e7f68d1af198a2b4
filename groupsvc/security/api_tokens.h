// ApiTokens: the bearer tokens of groupsvc's unary API, read from
// --api_tokens_file and read again when the file changes, so that a token can
// be added or revoked (e.g. by updating a Kubernetes Secret) without a restart.
//
// One token a line, `NAME SCOPES TOKEN`: NAME is [A-Za-z0-9_.-]{1,64} and
// unique, SCOPES a comma-separated subset of read,send,admin, TOKEN 16 to 512
// printable ASCII characters without spaces or '#'. `#` starts a comment;
// blank lines are ignored.
//
// Only SHA-256 digests of the tokens are kept; a presented token is hashed
// and compared with every digest in constant time (CRYPTO_memcmp), so neither
// the comparison nor the lookup depends on how much of a secret matched.
//
//   absl::StatusOr<std::unique_ptr<ApiTokens>> tokens = ApiTokens::Load(path, absl::Seconds(1));
//   std::optional<ApiTokens::Match> who = (*tokens)->Find(presented);
//
// Thread-safe. Find() looks at the file's identity (stat: inode, size, mtime)
// at most once per `check_interval` and re-reads it when that changed; a file
// that became unreadable or invalid keeps the previous tokens (and is logged
// once per change).
// Lifetime: owned by the ApiGuard, which lives as long as the server.
#ifndef CHAT_GROUPSVC_SECURITY_API_TOKENS_H_
#define CHAT_GROUPSVC_SECURITY_API_TOKENS_H_

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace groupsvc {

// What a token may call (bits).
enum Scope : uint32_t {
  kScopeRead = 1,   // ListGroups, GetGroup, GetHistory, GetPresence, Stats
  kScopeSend = 2,   // Send, GroupSend
  kScopeAdmin = 4,  // GroupAdd, GroupDiscard, Flush, Receive, NewChannel
};
// "read", "send", "admin".
absl::string_view ScopeName(Scope scope);
// "read,send" for the bits set.
std::string ScopeNames(uint32_t scopes);

struct TokenEntry {
  std::string name;
  uint32_t scopes = 0;
  std::array<unsigned char, 32> digest{};  // SHA-256 of the token.
};

// Parses a tokens file; errors name the line (never the token).
absl::StatusOr<std::vector<TokenEntry>> ParseTokens(absl::string_view text);

class ApiTokens {
 public:
  struct Match {
    std::string name;
    uint32_t scopes = 0;
  };

  // Fails if the file cannot be read or is invalid.
  static absl::StatusOr<std::unique_ptr<ApiTokens>> Load(std::string path,
                                                         absl::Duration check_interval);

  // The entry whose token is `token`, if any.
  std::optional<Match> Find(absl::string_view token);
  size_t size();
  const std::string& path() const { return path_; }

 private:
  // What identifies a version of the file (following symlinks).
  struct Stamp {
    bool exists = false;
    uint64_t dev = 0, ino = 0, size = 0;
    int64_t mtime_ns = 0, ctime_ns = 0;
    bool operator==(const Stamp& o) const {
      return exists == o.exists && dev == o.dev && ino == o.ino && size == o.size &&
             mtime_ns == o.mtime_ns && ctime_ns == o.ctime_ns;
    }
  };
  ApiTokens(std::string path, absl::Duration check_interval)
      : path_(std::move(path)), check_interval_(check_interval) {}
  static Stamp StampOf(const std::string& path);
  // Reads and parses the file as it is now.
  absl::StatusOr<std::vector<TokenEntry>> Read() const;
  void ReloadIfChangedLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const std::string path_;
  const absl::Duration check_interval_;
  absl::Mutex mu_;
  std::shared_ptr<const std::vector<TokenEntry>> entries_ ABSL_GUARDED_BY(mu_);
  Stamp stamp_ ABSL_GUARDED_BY(mu_);
  absl::Time next_check_ ABSL_GUARDED_BY(mu_);
};

}  // namespace groupsvc

#endif  // CHAT_GROUPSVC_SECURITY_API_TOKENS_H_

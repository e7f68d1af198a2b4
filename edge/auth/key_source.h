// KeySource: where TokenVerifier gets the identity provider's public keys
// now. JwksFile: a JWKS file (--jwks_file), read again when it changes, so
// that a key rotation needs no restart. JwksUrl: the provider's JWKS over
// HTTPS (--jwks_url), fetched by a thread of its own, refreshed every few
// minutes and when a token names a key it does not have (at most every few
// seconds), with capped backoff and jitter while the provider is down; the
// keys it has keep working meanwhile.
//
//   absl::StatusOr<std::unique_ptr<JwksFile>> keys = JwksFile::Open(path, &clock);
//   std::shared_ptr<const PublicKeys> now = (*keys)->Keys();
//
// The file is looked at again at most every `check_every` (on the Keys()
// call that finds it due); a new version that does not parse keeps the keys
// in use and is logged once (jwks_reload_failed), so a half-written file
// never locks users out.
//
// Thread-safe.
#ifndef CHAT_EDGE_AUTH_KEY_SOURCE_H_
#define CHAT_EDGE_AUTH_KEY_SOURCE_H_

#include <boost/asio/io_context.hpp>
#include <memory>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "edge/auth/public_keys.h"
#include "shared/clock.h"

namespace edge {

// Logs each key the set left out (jwks_key_skipped), naming `source`.
void LogSkipped(const PublicKeys& keys, const std::string& source);

class KeySource {
 public:
  virtual ~KeySource() = default;
  // The keys in use now; never null (empty before a first fetch).
  virtual std::shared_ptr<const PublicKeys> Keys() = 0;
  // A token named a key id the keys do not have: a source that can look
  // again (a rotation the provider has just published) may.
  virtual void UnknownKid(absl::string_view kid) {}
};

class JwksFile final : public KeySource {
 public:
  // Reads and parses `path`: an error if either fails (no keys, no start).
  static absl::StatusOr<std::unique_ptr<JwksFile>> Open(
      std::string path, const chat::Clock* clock, absl::Duration check_every = absl::Seconds(1));

  std::shared_ptr<const PublicKeys> Keys() override;

 private:
  JwksFile(std::string path, const chat::Clock* clock, absl::Duration check_every)
      : path_(std::move(path)), clock_(clock), check_every_(check_every) {}

  const std::string path_;
  const chat::Clock* const clock_;
  const absl::Duration check_every_;
  absl::Mutex mu_;
  std::shared_ptr<const PublicKeys> keys_ ABSL_GUARDED_BY(mu_);
  std::string text_ ABSL_GUARDED_BY(mu_);  // What keys_ (or the failed version) came from.
  absl::Time checked_ ABSL_GUARDED_BY(mu_);
};

struct JwksUrlOptions {
  // https://HOST[:PORT]/PATH, e.g. https://id.example.com/realms/chat/protocol/openid-connect/certs
  std::string url;
  // PEM CA bundle that signs the provider's certificate; empty: the system's.
  std::string ca_file;
  absl::Duration refresh = absl::Minutes(5);
  // An unknown kid fetches again at most this often.
  absl::Duration min_refetch = absl::Seconds(5);
  absl::Duration timeout = absl::Seconds(5);
  // Backoff after a failed fetch: from min_backoff doubling to max_backoff,
  // with jitter (half to the whole of it).
  absl::Duration min_backoff = absl::Seconds(1);
  absl::Duration max_backoff = absl::Minutes(1);
};

class JwksUrl final : public KeySource {
 public:
  // Starts fetching at once; INVALID_ARGUMENT for a URL that is not https
  // (or a CA file that does not load). Until the first fetch succeeds there
  // are no keys, and tokens are refused saying so.
  static absl::StatusOr<std::unique_ptr<JwksUrl>> Start(JwksUrlOptions options);
  ~JwksUrl() override;  // Stops the fetching thread, and a fetch under way.

  std::shared_ptr<const PublicKeys> Keys() override;
  void UnknownKid(absl::string_view kid) override;
  // Fetches attempted so far (tests).
  uint64_t attempts();

 private:
  struct Fetcher;
  class Lookup;
  explicit JwksUrl(std::unique_ptr<Fetcher> fetcher);
  void Run();
  // One GET of the URL, done by `deadline` (or cut short by the destructor).
  absl::StatusOr<std::string> Fetch(absl::Time deadline);

  const std::unique_ptr<Fetcher> fetcher_;
  absl::Mutex mu_;
  std::shared_ptr<const PublicKeys> keys_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool refetch_ ABSL_GUARDED_BY(mu_) = false;
  // Wakes the fetching thread early (an unknown kid, the destructor).
  bool woken_ ABSL_GUARDED_BY(mu_) = false;
  // The fetch under way, for the destructor to stop: its name lookup, then its I/O.
  std::shared_ptr<Lookup> looking_ ABSL_GUARDED_BY(mu_);
  boost::asio::io_context* fetching_ ABSL_GUARDED_BY(mu_) = nullptr;
  absl::Time next_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  absl::Time last_attempt_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  absl::Time backoff_until_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  uint64_t attempts_ ABSL_GUARDED_BY(mu_) = 0;
  std::thread thread_;
};

}  // namespace edge

#endif  // CHAT_EDGE_AUTH_KEY_SOURCE_H_

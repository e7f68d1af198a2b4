#include "groupsvc/security/api_tokens.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <sys/stat.h>

#include <fstream>
#include <utility>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "shared/log.h"

namespace groupsvc {
namespace {

constexpr size_t kMinTokenLength = 16;
constexpr size_t kMaxTokenLength = 512;
constexpr size_t kMaxNameLength = 64;
constexpr size_t kMaxFileBytes = 1 << 20;

std::array<unsigned char, 32> Sha256(absl::string_view data) {
  std::array<unsigned char, 32> digest{};
  unsigned int length = 0;
  EVP_Digest(data.data(), data.size(), digest.data(), &length, EVP_sha256(), nullptr);
  return digest;
}

bool ValidName(absl::string_view name) {
  if (name.empty() || name.size() > kMaxNameLength) return false;
  for (char c : name) {
    if (!absl::ascii_isalnum(c) && c != '_' && c != '.' && c != '-') return false;
  }
  return true;
}

bool ValidToken(absl::string_view token) {
  if (token.size() < kMinTokenLength || token.size() > kMaxTokenLength) return false;
  for (char c : token) {
    if (c <= ' ' || c > '~' || c == '#') return false;
  }
  return true;
}

}  // namespace

absl::string_view ScopeName(Scope scope) {
  switch (scope) {
    case kScopeRead:
      return "read";
    case kScopeSend:
      return "send";
    case kScopeAdmin:
      return "admin";
  }
  return "?";
}

std::string ScopeNames(uint32_t scopes) {
  std::vector<absl::string_view> names;
  for (Scope s : {kScopeRead, kScopeSend, kScopeAdmin}) {
    if (scopes & s) names.push_back(ScopeName(s));
  }
  return absl::StrJoin(names, ",");
}

absl::StatusOr<std::vector<TokenEntry>> ParseTokens(absl::string_view text) {
  std::vector<TokenEntry> entries;
  absl::flat_hash_set<std::string> names;
  int line_number = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    ++line_number;
    if (size_t hash = line.find('#'); hash != absl::string_view::npos) line = line.substr(0, hash);
    std::vector<absl::string_view> fields =
        absl::StrSplit(line, absl::ByAnyChar(" \t\r"), absl::SkipEmpty());
    if (fields.empty()) continue;
    auto error = [&](absl::string_view what) {
      return absl::InvalidArgumentError(absl::StrCat("line ", line_number, ": ", what));
    };
    if (fields.size() != 3) return error("expected NAME SCOPES TOKEN");
    TokenEntry entry;
    entry.name = std::string(fields[0]);
    if (!ValidName(entry.name)) {
      return error(absl::StrCat("name must be 1 to ", kMaxNameLength,
                                " of A-Z a-z 0-9 _ . -; got \"", entry.name, "\""));
    }
    if (!names.insert(entry.name).second) {
      return error(absl::StrCat("name \"", entry.name, "\" is used twice"));
    }
    for (absl::string_view scope : absl::StrSplit(fields[1], ',')) {
      if (scope == "read") {
        entry.scopes |= kScopeRead;
      } else if (scope == "send") {
        entry.scopes |= kScopeSend;
      } else if (scope == "admin") {
        entry.scopes |= kScopeAdmin;
      } else {
        return error(absl::StrCat("unknown scope \"", scope, "\" (read, send, admin)"));
      }
    }
    if (!ValidToken(fields[2])) {
      return error(absl::StrCat("the token of \"", entry.name, "\" must be ", kMinTokenLength,
                                " to ", kMaxTokenLength,
                                " printable ASCII characters without spaces or '#'"));
    }
    entry.digest = Sha256(fields[2]);
    for (const TokenEntry& other : entries) {
      if (CRYPTO_memcmp(other.digest.data(), entry.digest.data(), entry.digest.size()) == 0) {
        return error(absl::StrCat("\"", entry.name, "\" has the token of \"", other.name, "\""));
      }
    }
    entries.push_back(std::move(entry));
  }
  return entries;
}

absl::StatusOr<std::unique_ptr<ApiTokens>> ApiTokens::Load(std::string path,
                                                           absl::Duration check_interval) {
  std::unique_ptr<ApiTokens> tokens(new ApiTokens(std::move(path), check_interval));
  const Stamp stamp = StampOf(tokens->path_);
  absl::StatusOr<std::vector<TokenEntry>> entries = tokens->Read();
  if (!entries.ok()) return entries.status();
  absl::MutexLock lock(&tokens->mu_);
  tokens->stamp_ = stamp;
  tokens->entries_ = std::make_shared<const std::vector<TokenEntry>>(*std::move(entries));
  tokens->next_check_ = absl::Now() + check_interval;
  return tokens;
}

ApiTokens::Stamp ApiTokens::StampOf(const std::string& path) {
  Stamp stamp;
  struct stat st;
  if (stat(path.c_str(), &st) != 0) return stamp;
  stamp.exists = true;
  stamp.dev = st.st_dev;
  stamp.ino = st.st_ino;
  stamp.size = st.st_size;
  stamp.mtime_ns = int64_t{st.st_mtim.tv_sec} * 1000000000 + st.st_mtim.tv_nsec;
  stamp.ctime_ns = int64_t{st.st_ctim.tv_sec} * 1000000000 + st.st_ctim.tv_nsec;
  return stamp;
}

absl::StatusOr<std::vector<TokenEntry>> ApiTokens::Read() const {
  std::ifstream in(path_, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read ", path_));
  std::string text;
  text.resize(kMaxFileBytes + 1);
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  text.resize(static_cast<size_t>(in.gcount()));
  if (text.size() > kMaxFileBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat(path_, ": larger than ", kMaxFileBytes, " bytes"));
  }
  absl::StatusOr<std::vector<TokenEntry>> entries = ParseTokens(text);
  if (!entries.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(path_, ": ", entries.status().message()));
  }
  return entries;
}

void ApiTokens::ReloadIfChangedLocked() {
  const absl::Time now = absl::Now();
  if (now < next_check_) return;
  next_check_ = now + check_interval_;
  const Stamp stamp = StampOf(path_);
  if (stamp == stamp_) return;
  // Remembered whatever the outcome, so that a bad version is logged once.
  stamp_ = stamp;
  absl::StatusOr<std::vector<TokenEntry>> entries = Read();
  if (!entries.ok()) {
    chat::LogEvent("api_tokens_reload_failed", {{"path", path_},
                                                {"error", entries.status().message()},
                                                {"kept", absl::StrCat(entries_->size())}});
    return;
  }
  std::vector<absl::string_view> names;
  for (const TokenEntry& e : *entries) names.push_back(e.name);
  chat::LogEvent("api_tokens_loaded", {{"path", path_},
                                       {"tokens", absl::StrCat(entries->size())},
                                       {"names", absl::StrJoin(names, ",")}});
  entries_ = std::make_shared<const std::vector<TokenEntry>>(*std::move(entries));
}

std::optional<ApiTokens::Match> ApiTokens::Find(absl::string_view token) {
  std::shared_ptr<const std::vector<TokenEntry>> entries;
  {
    absl::MutexLock lock(&mu_);
    ReloadIfChangedLocked();
    entries = entries_;
  }
  const std::array<unsigned char, 32> digest = Sha256(token);
  // Every entry is compared, matched or not.
  const TokenEntry* found = nullptr;
  for (const TokenEntry& e : *entries) {
    if (CRYPTO_memcmp(e.digest.data(), digest.data(), digest.size()) == 0) found = &e;
  }
  if (found == nullptr) return std::nullopt;
  return Match{found->name, found->scopes};
}

size_t ApiTokens::size() {
  absl::MutexLock lock(&mu_);
  return entries_->size();
}

}  // namespace groupsvc

#include "edge/channels/router.h"

#include "absl/strings/str_split.h"

namespace edge {
namespace {

bool IsWord(const std::string& s) {
  if (s.empty()) return false;
  for (char c : s) {
    bool word =
        (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
    if (!word) return false;
  }
  return true;
}

bool IsCapture(const std::string& segment) {
  return segment.size() > 2 && segment.front() == '{' && segment.back() == '}';
}

}  // namespace

void Router::Add(const std::string& pattern, Factory factory, Validator validator) {
  routes_.push_back(Route{absl::StrSplit(pattern, '/'), std::move(factory), std::move(validator)});
}

std::optional<Router::Match> Router::Find(const std::string& path) const {
  std::vector<std::string> parts = absl::StrSplit(path, '/');
  for (const Route& route : routes_) {
    if (route.segments.size() != parts.size()) continue;
    Match match{&route.factory, {}};
    bool ok = true;
    for (size_t i = 0; ok && i < parts.size(); ++i) {
      const std::string& seg = route.segments[i];
      if (IsCapture(seg)) {
        ok = IsWord(parts[i]);
        if (ok) match.captures[seg.substr(1, seg.size() - 2)] = parts[i];
      } else {
        ok = seg == parts[i];
      }
    }
    if (ok && route.validator && !route.validator(match.captures)) ok = false;
    if (ok) return match;
  }
  return std::nullopt;
}

}  // namespace edge

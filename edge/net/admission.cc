#include "edge/net/admission.h"

#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "shared/reason.h"

namespace edge {

Admission::Ticket& Admission::Ticket::operator=(Ticket&& other) noexcept {
  if (this != &other) {
    Release();
    owner_ = std::move(other.owner_);
    id_ = std::exchange(other.id_, 0);
  }
  return *this;
}

void Admission::Ticket::Settle() {
  if (owner_ != nullptr) owner_->Settle(id_);
}

void Admission::Ticket::Release() {
  if (owner_ == nullptr) return;
  owner_->Release(id_);
  owner_.reset();
  id_ = 0;
}

absl::StatusOr<Admission::Ticket> Admission::Admit(const std::string& address,
                                                   std::function<void()> evict) {
  std::function<void()> evicted;
  Ticket ticket;
  {
    absl::MutexLock lock(&mu_);
    size_t& from_address = per_address_[address];
    if (from_address >= limits_.max_per_address) {
      ++refused_;
      return chat::WithReason(
          absl::ResourceExhaustedError(absl::StrCat("too many connections from this address (",
                                                    limits_.max_per_address, ")")),
          kMaxPerAddress);
    }
    if (entries_.size() >= limits_.max_connections) {
      if (pending_.empty()) {
        ++refused_;
        if (from_address == 0) per_address_.erase(address);
        return chat::WithReason(
            absl::ResourceExhaustedError(absl::StrCat("the edge is at its connection limit (",
                                                      limits_.max_connections, ")")),
            kMaxConnections);
      }
      // The oldest connection still sending its request makes room.
      const uint64_t oldest = pending_.front();
      evicted = std::move(entries_.at(oldest).evict);
      EraseLocked(oldest);
      ++evicted_;
    }
    const uint64_t id = next_id_++;
    pending_.push_back(id);
    entries_[id] = Entry{address, std::move(evict), true, std::prev(pending_.end())};
    ++per_address_[address];
    ticket.owner_ = shared_from_this();
    ticket.id_ = id;
  }
  if (evicted) evicted();  // Outside the lock: it posts the close.
  return ticket;
}

void Admission::Settle(uint64_t id) {
  absl::MutexLock lock(&mu_);
  auto it = entries_.find(id);
  if (it == entries_.end() || !it->second.pending) return;
  pending_.erase(it->second.at);
  it->second.pending = false;
  it->second.evict = nullptr;
}

void Admission::Release(uint64_t id) {
  absl::MutexLock lock(&mu_);
  EraseLocked(id);
}

void Admission::EraseLocked(uint64_t id) {
  auto it = entries_.find(id);
  if (it == entries_.end()) return;  // Evicted earlier: its place is already free.
  if (it->second.pending) pending_.erase(it->second.at);
  auto count = per_address_.find(it->second.address);
  if (count != per_address_.end() && --count->second == 0) per_address_.erase(count);
  entries_.erase(it);
}

Admission::Counts Admission::counts() const {
  absl::MutexLock lock(&mu_);
  return Counts{entries_.size(), pending_.size(), refused_, evicted_};
}

}  // namespace edge

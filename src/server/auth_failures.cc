#include "custos/server/auth_failures.h"

#include "custos/crypto/sha256.h"

namespace custos::server {
namespace {

std::string Sanitize(std::string_view s) {
  std::string out(s.substr(0, 64));
  for (char& c : out) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '_' || c == '.' || c == ':' || c == '@' || c == '-';
    if (!ok)
      c = '?';
  }
  return out;
}

}  // namespace

AuthFailureLog::AuthFailureLog(kernel::Kernel* kernel, int64_t interval_ms, const Clock* clock)
    : kernel_(kernel),
      interval_ms_(interval_ms),
      clock_(clock != nullptr ? clock : &SystemClock()) {}

std::string AuthFailureLog::KeyHint(std::string_view key) {
  return "key:" + crypto::Sha256(key).Hex().substr(0, 8);
}

void AuthFailureLog::Note(Reason reason, std::string_view transport, std::string_view claimed) {
  Window due;
  const bool write = Take(false, &due);
  {
    std::lock_guard<std::mutex> l(mu_);
    const int64_t now = clock_->NowMillis();
    if (pending_.total == 0)
      pending_.start_ms = now;
    pending_.end_ms = now;
    ++pending_.total;
    auto key =
        std::make_tuple(std::string(ReasonName(reason)), Sanitize(transport), Sanitize(claimed));
    auto it = pending_.groups.find(key);
    if (it != pending_.groups.end()) {
      ++it->second;
    } else if (pending_.groups.size() < kMaxGroups) {
      pending_.groups.emplace(std::move(key), 1);
    } else {
      ++pending_.other;
    }
  }
  if (write)
    Write(due);
}

void AuthFailureLog::FlushIfDue() {
  Window due;
  if (Take(false, &due))
    Write(due);
}

void AuthFailureLog::Flush() {
  Window due;
  if (Take(true, &due))
    Write(due);
}

bool AuthFailureLog::Take(bool force, Window* out) {
  std::lock_guard<std::mutex> l(mu_);
  if (pending_.total == 0)
    return false;
  if (!force && clock_->NowMillis() - pending_.start_ms < interval_ms_)
    return false;
  *out = std::move(pending_);
  pending_ = Window();
  return true;
}

void AuthFailureLog::Write(const Window& w) {
  Json groups = Json::array();
  for (const auto& [key, count] : w.groups) {
    const auto& [reason, transport, claimed] = key;
    Json g = {{"reason", reason}, {"transport", transport}, {"count", count}};
    if (!claimed.empty())
      g["claimed"] = claimed;
    groups.push_back(std::move(g));
  }
  Json details = {{"total", w.total},
                  {"first_ms", w.start_ms},
                  {"last_ms", w.end_ms},
                  {"interval_ms", interval_ms_},
                  {"groups", groups}};
  if (w.other > 0)
    details["other"] = w.other;
  // A failed append leaves the counts unrecorded but never blocks serving; metrics still have
  // every refused response.
  kernel_->RecordEvent("auth.failures", details).IgnoreError();
}

}  // namespace custos::server

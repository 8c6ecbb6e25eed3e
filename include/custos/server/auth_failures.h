#pragma once
// AuthFailureLog records refused authentication (401) and admin refusals (403 admin_required) in
// the flight log without letting whoever sends them grow it (decision 029): failures are counted
// in memory by (reason, transport, claimed identity) and written as ONE `auth.failures` event
// entry per window — at the first Note() or FlushIfDue() at least `interval_ms` after the window's
// first failure, and by Flush() at shutdown. So a flood of bad requests costs at most one entry
// per interval, of bounded size: at most kMaxGroups groups, the rest counted as `other`.
//
// What a group names, never a credential: the reason code, the transport (tcp | tls | unix), and
// the identity the request claimed — the Custos-Agent header of a signed request, "uid:N" of a
// socket peer, "key:" + the first 8 hex digits of SHA-256 of a presented bearer key (the key
// itself never), or the authenticated agent of an admin refusal. Claimed names are cut to 64
// bytes of [A-Za-z0-9_.:@-] (anything else becomes '?'); the kernel redacts the entry like every
// other (INV-6).
//
// Thread-safe: Note() runs on many workers at once; the kernel append happens outside the lock.

#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <tuple>

#include "custos/core/clock.h"
#include "custos/core/reason.h"
#include "custos/kernel/kernel.h"

namespace custos::server {

class AuthFailureLog {
 public:
  static constexpr size_t kMaxGroups = 64;
  static constexpr int64_t kDefaultIntervalMs = 10'000;

  // REQUIRES: `kernel` (and `clock`, default SystemClock()) outlive the log.
  explicit AuthFailureLog(kernel::Kernel* kernel, int64_t interval_ms = kDefaultIntervalMs,
                          const Clock* clock = nullptr);

  // Counts one refusal; writes the window's summary first if it is due.
  void Note(Reason reason, std::string_view transport, std::string_view claimed);
  // Writes the summary if the window is due (the daemon calls this about once a second).
  void FlushIfDue();
  // Writes the pending summary now, if there is one (shutdown, tests).
  void Flush();

  // "key:" + 8 hex digits of SHA-256(key): how a bearer key is named in a summary.
  static std::string KeyHint(std::string_view key);

 private:
  struct Window {
    int64_t start_ms = 0;
    int64_t end_ms = 0;
    int64_t total = 0;
    int64_t other = 0;  // failures beyond kMaxGroups distinct groups
    std::map<std::tuple<std::string, std::string, std::string>, int64_t> groups;
  };
  // Takes the window if it is due (or `force`); empty if nothing is pending.
  bool Take(bool force, Window* out);
  void Write(const Window& w);

  kernel::Kernel* kernel_;
  int64_t interval_ms_;
  const Clock* clock_;
  std::mutex mu_;
  Window pending_;  // GUARDED_BY(mu_)
};

}  // namespace custos::server

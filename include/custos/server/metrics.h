#pragma once
// Metrics are custosd's counters, rendered as Prometheus text (format 0.0.4) by /metrics:
// decisions by verdict and reason, request latency as a histogram, responses by route and status,
// requests in flight, open connections, TLS handshake failures, store health (whether a read
// answered, how long it took, the log's size) and budget use per agent and resource (summed over
// the agent's runs: used, reserved, and the finite limits).
// Labels are bounded sets (verdicts, reason names, route patterns), never caller-supplied text,
// so memory stays bounded whatever clients send (INV-6: no values from requests appear here).
//
// Thread-safe: counters are atomics; the labelled maps take a short mutex.

#include <array>
#include <atomic>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace custos::server {

// One agent's budget figures for one resource, summed over its runs. `limit` sums only the runs
// whose limit is finite; `limited` is false if every run is unlimited for this resource.
struct BudgetFigure {
  std::string agent;
  std::string resource;
  int64_t used = 0;
  int64_t reserved = 0;
  int64_t limit = 0;
  bool limited = false;
};

struct StoreHealth {
  bool ok = false;          // a read answered at scrape time
  int64_t log_entries = 0;  // the log's size (0 if !ok)
  int64_t read_micros = 0;  // how long that read took
};

class Metrics {
 public:
  // Upper bounds (µs) of the latency histogram's buckets; +Inf is implicit.
  static constexpr std::array<int64_t, 12> kBucketsMicros = {
      50, 100, 250, 500, 1'000, 2'500, 5'000, 10'000, 50'000, 250'000, 1'000'000, 5'000'000};

  void ConnectionOpened() { connections_.fetch_add(1, std::memory_order_relaxed); }
  void ConnectionClosed() { connections_.fetch_sub(1, std::memory_order_relaxed); }
  void ConnectionRejected() { rejected_.fetch_add(1, std::memory_order_relaxed); }
  // A TLS connection that never completed its handshake (plain HTTP, garbage, a timeout).
  void TlsHandshakeFailed() { tls_failed_.fetch_add(1, std::memory_order_relaxed); }
  int64_t connections() const { return connections_.load(std::memory_order_relaxed); }

  void RequestStarted() { in_flight_.fetch_add(1, std::memory_order_relaxed); }
  // `route` is the matched pattern ("/v1/syscall"), or "unmatched".
  void RequestFinished(const std::string& route, int status, int64_t micros);
  int64_t in_flight() const { return in_flight_.load(std::memory_order_relaxed); }

  void Decided(std::string_view verdict, std::string_view reason);

  // `store_ok` and `log_entries` describe the store at render time.
  std::string Render(bool store_ok, int64_t log_entries) const;
  std::string Render(const StoreHealth& store, const std::vector<BudgetFigure>& budgets) const;

 private:
  std::atomic<int64_t> connections_{0};
  std::atomic<int64_t> rejected_{0};
  std::atomic<int64_t> tls_failed_{0};
  std::atomic<int64_t> in_flight_{0};
  std::array<std::atomic<uint64_t>, kBucketsMicros.size() + 1> buckets_{};
  std::atomic<uint64_t> latency_sum_us_{0};
  std::atomic<uint64_t> latency_count_{0};
  mutable std::mutex mu_;
  std::map<std::pair<std::string, int>, uint64_t> responses_;          // GUARDED_BY(mu_)
  std::map<std::pair<std::string, std::string>, uint64_t> decisions_;  // GUARDED_BY(mu_)
};

}  // namespace custos::server

#include "custos/server/metrics.h"

#include <sstream>

namespace custos::server {

void Metrics::RequestFinished(const std::string& route, int status, int64_t micros) {
  in_flight_.fetch_sub(1, std::memory_order_relaxed);
  size_t b = 0;
  while (b < kBucketsMicros.size() && micros > kBucketsMicros[b])
    ++b;
  buckets_[b].fetch_add(1, std::memory_order_relaxed);
  latency_sum_us_.fetch_add(static_cast<uint64_t>(micros < 0 ? 0 : micros),
                            std::memory_order_relaxed);
  latency_count_.fetch_add(1, std::memory_order_relaxed);
  std::lock_guard<std::mutex> l(mu_);
  ++responses_[{route, status}];
}

void Metrics::Decided(std::string_view verdict, std::string_view reason) {
  std::lock_guard<std::mutex> l(mu_);
  ++decisions_[{std::string(verdict), std::string(reason)}];
}

namespace {

// Prometheus label values: backslash, double quote and newline escaped.
std::string LabelValue(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '\\' || c == '"') {
      out += '\\';
      out += c;
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

}  // namespace

std::string Metrics::Render(bool store_ok, int64_t log_entries) const {
  StoreHealth h;
  h.ok = store_ok;
  h.log_entries = log_entries;
  return Render(h, {});
}

std::string Metrics::Render(const StoreHealth& store,
                            const std::vector<BudgetFigure>& budgets) const {
  const bool store_ok = store.ok;
  const int64_t log_entries = store.log_entries;
  std::ostringstream o;
  o << "# HELP custos_decisions_total Syscall decisions returned through the API.\n"
       "# TYPE custos_decisions_total counter\n";
  std::map<std::pair<std::string, std::string>, uint64_t> decisions;
  std::map<std::pair<std::string, int>, uint64_t> responses;
  {
    std::lock_guard<std::mutex> l(mu_);
    decisions = decisions_;
    responses = responses_;
  }
  for (const auto& [k, n] : decisions) {
    o << "custos_decisions_total{verdict=\"" << k.first << "\",reason=\"" << k.second << "\"} " << n
      << "\n";
  }
  o << "# HELP custos_http_responses_total Responses by route pattern and status.\n"
       "# TYPE custos_http_responses_total counter\n";
  for (const auto& [k, n] : responses) {
    o << "custos_http_responses_total{route=\"" << k.first << "\",code=\"" << k.second << "\"} "
      << n << "\n";
  }
  o << "# HELP custos_request_duration_seconds Time from a complete request to its response.\n"
       "# TYPE custos_request_duration_seconds histogram\n";
  uint64_t cumulative = 0;
  for (size_t i = 0; i < buckets_.size(); ++i) {
    cumulative += buckets_[i].load(std::memory_order_relaxed);
    o << "custos_request_duration_seconds_bucket{le=\"";
    if (i < kBucketsMicros.size()) {
      o << static_cast<double>(kBucketsMicros[i]) / 1e6;
    } else {
      o << "+Inf";
    }
    o << "\"} " << cumulative << "\n";
  }
  o << "custos_request_duration_seconds_sum "
    << static_cast<double>(latency_sum_us_.load(std::memory_order_relaxed)) / 1e6 << "\n"
    << "custos_request_duration_seconds_count " << latency_count_.load(std::memory_order_relaxed)
    << "\n";
  o << "# HELP custos_requests_in_flight Requests being handled.\n"
       "# TYPE custos_requests_in_flight gauge\n"
    << "custos_requests_in_flight " << in_flight() << "\n"
    << "# HELP custos_connections Open client connections.\n"
       "# TYPE custos_connections gauge\n"
    << "custos_connections " << connections() << "\n"
    << "# HELP custos_connections_rejected_total Connections refused at the cap (503).\n"
       "# TYPE custos_connections_rejected_total counter\n"
    << "custos_connections_rejected_total " << rejected_.load(std::memory_order_relaxed) << "\n"
    << "# HELP custos_tls_handshake_failures_total TLS connections closed before a handshake "
       "completed.\n"
       "# TYPE custos_tls_handshake_failures_total counter\n"
    << "custos_tls_handshake_failures_total " << tls_failed_.load(std::memory_order_relaxed) << "\n"
    << "# HELP custos_store_up 1 if the store answered a read at scrape time.\n"
       "# TYPE custos_store_up gauge\n"
    << "custos_store_up " << (store_ok ? 1 : 0) << "\n"
    << "# HELP custos_log_entries Entries in the flight log.\n"
       "# TYPE custos_log_entries gauge\n"
    << "custos_log_entries " << log_entries << "\n"
    << "# HELP custos_store_read_seconds How long the scrape's store read took.\n"
       "# TYPE custos_store_read_seconds gauge\n"
    << "custos_store_read_seconds " << static_cast<double>(store.read_micros) / 1e6 << "\n";
  struct Family {
    const char* name;
    const char* help;
    int64_t BudgetFigure::*field;
  };
  for (const Family& f :
       {Family{"custos_budget_used", "Budget used, summed over the agent's runs.",
               &BudgetFigure::used},
        Family{"custos_budget_reserved", "Budget reserved by calls in progress (and carves).",
               &BudgetFigure::reserved},
        Family{"custos_budget_limit",
               "Budget limits summed over the agent's runs (resources with a limit only).",
               &BudgetFigure::limit}}) {
    o << "# HELP " << f.name << " " << f.help << "\n# TYPE " << f.name << " gauge\n";
    for (const BudgetFigure& b : budgets) {
      if (f.field == &BudgetFigure::limit && !b.limited)
        continue;
      o << f.name << "{agent=\"" << LabelValue(b.agent) << "\",resource=\""
        << LabelValue(b.resource) << "\"} " << b.*f.field << "\n";
    }
  }
  return o.str();
}

}  // namespace custos::server

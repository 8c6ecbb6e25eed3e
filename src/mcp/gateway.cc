#include "custos/mcp/gateway.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <list>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <shared_mutex>
#include <thread>

#include "custos/core/encoding.h"
#include "custos/crypto/random.h"
#include "custos/crypto/sha256.h"
#include "custos/kernel/token_wallet.h"
#include "custos/mcp/descriptor.h"
#include "custos/mcp/downstream.h"
#include "custos/mcp/era.h"
#include "custos/mcp/jsonrpc.h"
#include "custos/mcp/stdio_server.h"

namespace custos::mcp {
namespace {

constexpr int kMaxListPages = 100;  // internal descriptor refresh: pages per server

// Server-bound methods other than tools/call, each its own kernel target "srv.<method>".
const std::set<std::string, std::less<>> kServerMethods = {
    "tools/list",      "resources/list",      "resources/templates/list",
    "resources/read",  "resources/subscribe", "resources/unsubscribe",
    "prompts/list",    "prompts/get",         "completion/complete",
    "logging/setLevel"};

// Server → client requests, each its own kernel target "srv.client/<method>", and the client
// capability each needs.
const std::map<std::string, std::string, std::less<>> kClientMethods = {
    {"sampling/createMessage", "sampling"},
    {"elicitation/create", "elicitation"},
    {"roots/list", "roots"}};

// A server's log message is the syscall target "srv.notifications/message" (decision 030): decided
// by the kernel for every message, recorded as a syscall when it would show the session a label
// set its logs have not shown yet, otherwise summarised in "mcp.server.log" events.
constexpr std::string_view kLogMethod = "notifications/message";
// RFC 5424 severities as MCP names them, least severe first.
constexpr std::string_view kLogLevels[] = {"debug", "info",     "notice", "warning",
                                           "error", "critical", "alert",  "emergency"};
constexpr int64_t kLogSummaryEveryMs = 10'000;  // between summaries while no request completes

int LogSeverity(const Json& level) {
  if (!level.is_string())
    return -1;
  for (size_t i = 0; i < std::size(kLogLevels); ++i) {
    if (level.get_ref<const std::string&>() == kLogLevels[i])
      return static_cast<int>(i);
  }
  return -1;
}

int64_t SteadyMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// What happened to one server's log messages since the last summary.
struct LogTally {
  int64_t relayed = 0;
  int64_t redacted = 0;       // relayed with a secret value replaced
  int64_t denied = 0;         // the kernel refused to relay them
  int64_t below_level = 0;    // under the level the client asked for
  int64_t not_requested = 0;  // a 2026-07-28 client with no request asking for logs
  int64_t over_cap = 0;       // over max_notifications_per_sec (the gateway's own count)
  int64_t malformed = 0;      // no valid level or no data
  std::map<std::string, int64_t> levels;  // relayed, by level
  std::string digest;                     // chained SHA-256 of the relayed messages
  Json first_denial;                      // {reason, stage, rule} of the first refusal
  int64_t since_ms = 0;                   // when this tally started
  int64_t window_ms = 0;                  // the current one-second cap window
  int64_t in_window = 0;
  bool empty() const {
    return relayed + denied + below_level + not_requested + over_cap + malformed == 0;
  }
};

// The client request a mediated call runs for, on the thread that runs it: the kernel performs the
// effect on the caller's thread, so the provider can tie the server request to it (cancellation).
thread_local const std::string* tl_client_request = nullptr;
// The gateway session a mediated call runs for (same reason): with several sessions on one kernel
// (the Streamable HTTP front) the shared "srv." provider routes each call to its own session.
thread_local const void* tl_session = nullptr;
// The (already shaped) log message a "srv.notifications/message" syscall hands over as its effect.
thread_local const Json* tl_log_message = nullptr;
// Set while a server's transport thread relays a log message through the kernel: the provider
// must not wait for life_mu there, since Shutdown holds it exclusively while joining that thread.
thread_local bool tl_transport_thread = false;

// Takes `l` (shared, on life_mu) unless that would wait on a transport thread.
bool LockLife(std::shared_lock<std::shared_mutex>& l) {
  if (tl_transport_thread)
    return l.try_lock();
  l.lock();
  return true;
}

std::string PinKey(const std::string& tool) { return "mcp.pin/" + tool; }
std::string PendingKey(const std::string& tool) { return "mcp.pending/" + tool; }

Json StatusData(const Status& st) { return {{"reason", std::string(ReasonName(st.reason()))}}; }

// An opaque gateway cursor: which server, and that server's own cursor.
std::string EncodeCursor(size_t server, const Json& cursor) {
  const std::string j = Json{{"s", server}, {"c", cursor}}.dump();
  return Base64Encode(AsBytes(j));
}

Result<std::pair<size_t, Json>> DecodeCursor(std::string_view c) {
  Result<std::vector<uint8_t>> raw = Base64Decode(c);
  if (!raw.ok())
    return Status(Reason::kInvalidArgument, "invalid cursor");
  Result<Json> j =
      ParseUntrustedJson(std::string_view(reinterpret_cast<const char*>(raw->data()), raw->size()));
  if (!j.ok() || !j->is_object() || !j->contains("s") || !j->at("s").is_number_unsigned())
    return Status(Reason::kInvalidArgument, "invalid cursor");
  return std::make_pair(j->at("s").get<size_t>(), j->value("c", Json()));
}

// Content (tool results, resources, prompts, completions) from an untrusted server is untrusted +
// external. Listings are untrusted but not external: their descriptors passed pinning, and a
// session that merely listed tools must not be barred from consequential ones (decision 017).
// Anything with injection markers is poisoned-suspect and external, whatever the server's trust.
labels::LabelSet LabelsFor(const ServerConfig& s, bool listing, bool poisoned) {
  labels::LabelSet l;
  if (s.trust == ServerTrust::kUntrusted) {
    l = labels::LabelSet::Untrusted();
    if (!listing)
      l.AddTag("external");
  }
  l.AddTag("source:mcp:" + s.name);
  if (poisoned) {
    l.JoinWith(labels::LabelSet::Parse({"poisoned-suspect"}).value());
    l.AddTag("external");
  }
  return l;
}

bool IsListing(std::string_view method) {
  return method == "tools/list" || method == "resources/list" ||
         method == "resources/templates/list" || method == "prompts/list";
}

// Fields a 2025-03-26 client does not know (added in 2025-06-18 and later).
void DowngradeForClient(const std::string& client_version, const std::string& method, Json* r) {
  if (client_version != "2025-03-26" || !r->is_object())
    return;
  if (method == "tools/list" && r->contains("tools")) {
    for (Json& t : (*r)["tools"]) {
      if (t.is_object()) {
        t.erase("outputSchema");
        t.erase("title");
        t.erase("icons");
      }
    }
  } else if (method == "tools/call") {
    r->erase("structuredContent");
  }
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Shared state: the servers and what the gateway knows of their tools. Owned jointly by the
// Gateway and the kernel's tool providers (which may outlive the Gateway object).

struct ToolState {
  Json descriptor;  // as the server sent it
  std::string hash;
  Status usable = Status::Ok();  // why a call is refused, if it is
  bool poisoned = false;
};

struct Backend {
  ServerConfig config;
  std::unique_ptr<Downstream> server;
  mutable std::shared_mutex tools_mu;
  std::map<std::string, ToolState> tools;  // by the server's own tool name
  std::mutex log_mu;
  LogTally log;                          // guarded by log_mu
  std::set<std::string> log_label_sets;  // label sets a recorded log syscall has shown
};

struct Shared {
  GatewayConfig config;
  kernel::Kernel* kernel = nullptr;
  // The gateway agent's capability tokens, one per run (Kernel::Grant of its policy entry, cached
  // until the policy changes). Every syscall the gateway issues carries one; a revoked token is
  // not replaced, so the kernel refuses the gateway's calls (token_revoked) from then on.
  std::unique_ptr<kernel::TokenWallet> wallet;
  std::vector<std::unique_ptr<Backend>> backends;
  // Held shared while a server is used, exclusively by Shutdown to destroy the servers (their
  // callbacks point into the Gateway, which the kernel's providers may outlive).
  std::shared_mutex life_mu;
  bool closed = false;  // guarded by life_mu
  // Server requests in flight, by client request id (dumped): for notifications/cancelled.
  std::mutex inflight_mu;
  std::map<std::string, std::pair<Backend*, int64_t>> inflight;
  // Sends a request to the client and waits for its answer (set by the Gateway).
  std::function<Result<Message>(const std::string& method, const Json& params)> to_client;

  Backend* Find(std::string_view name) {
    for (auto& b : backends) {
      if (b->config.name == name)
        return b.get();
    }
    return nullptr;
  }

  // The names the client sees: "srv.name" and "srv+uri", or the server's own with namespaces off
  // (config guarantees a single server then). Kernel targets always keep "srv.".
  std::string ClientName(const Backend& b, const std::string& name) const {
    return config.namespaces ? b.config.name + "." + name : name;
  }
  std::string ClientUri(const Backend& b, const std::string& uri) const {
    return config.namespaces ? b.config.name + "+" + uri : uri;
  }

  void Event(const std::string& name, const Json& details) {
    if (kernel != nullptr)
      kernel->RecordEvent(name, details).IgnoreError();
  }

  // Pins or checks one descriptor; returns the tool's state. Records first pins and changes.
  ToolState Inspect(Backend& b, const Json& tool) {
    ToolState st;
    st.descriptor = tool;
    st.hash = DescriptorHash(tool);
    const std::string name = tool.value("name", "");
    const std::string full = b.config.name + "." + name;
    st.poisoned =
        FindInjectionMarker(tool.dump(-1, ' ', false, Json::error_handler_t::replace)).has_value();
    store::Store& store = kernel->store();
    Result<std::optional<std::string>> pin = store.GetMeta(PinKey(full));
    if (!pin.ok()) {
      st.usable = pin.status();
      return st;
    }
    if (!pin->has_value() && config.pin == PinMode::kFirstUse) {
      if (store.PutMeta(PinKey(full), st.hash).ok()) {
        Event("mcp.descriptor.pinned", {{"tool", full}, {"hash", st.hash}});
        *pin = st.hash;
      }
    }
    if (!pin->has_value() || **pin != st.hash) {
      const Json pending = {{"hash", st.hash}, {"descriptor", tool}};
      Result<std::optional<std::string>> old = store.GetMeta(PendingKey(full));
      bool new_change = true;
      if (old.ok() && old->has_value()) {
        Result<Json> oj = ParseUntrustedJson(**old);
        new_change = !oj.ok() || !oj->is_object() || oj->value("hash", "") != st.hash;
      }
      if (new_change) {
        store
            .PutMeta(PendingKey(full), pending.dump(-1, ' ', false, Json::error_handler_t::replace))
            .IgnoreError();
        Event(pin->has_value() ? "mcp.descriptor.changed" : "mcp.descriptor.unapproved",
              {{"tool", full},
               {"pinned", pin->has_value() ? **pin : std::string()},
               {"offered", st.hash}});
      }
      st.usable = Status(
          Reason::kMcpDescriptorChanged,
          pin->has_value()
              ? "tool '" + full +
                    "' changed its descriptor since it was approved; it is "
                    "hidden until `custos mcp approve " +
                    full + "`"
              : "tool '" + full + "' is not approved yet; run `custos mcp approve " + full + "`");
      return st;
    }
    if (!IsClassified(tool, b.config)) {
      st.usable = Status(Reason::kMcpToolUnclassified,
                         "tool '" + full +
                             "' has no annotations and is not listed under read_only or "
                             "consequential in gateway.toml; unknown tools fail closed");
    }
    return st;
  }

  // Fetches every page of a server's tools (the gateway's own view, for pinning and Check()).
  Status RefreshTools(Backend& b) {
    std::shared_lock life(life_mu);
    if (closed)
      return Status(Reason::kMcpServerUnavailable, "the gateway is shutting down");
    std::map<std::string, ToolState> fresh;
    Json cursor;
    for (int page = 0; page < kMaxListPages; ++page) {
      Json params = Json::object();
      if (!cursor.is_null())
        params["cursor"] = cursor;
      CUSTOS_ASSIGN_OR_RETURN(Message m, b.server->Call("tools/list", params));
      if (m.type != Message::Type::kResponse)
        return Status(Reason::kEffectFailed, "tools/list failed: " + m.error_message);
      if (!m.result.contains("tools") || !m.result["tools"].is_array())
        break;
      for (const Json& t : m.result["tools"]) {
        if (t.is_object() && t.contains("name") && t["name"].is_string())
          fresh[t["name"].get<std::string>()] = Inspect(b, t);
      }
      cursor = m.result.value("nextCursor", Json());
      if (!cursor.is_string())
        break;
    }
    std::unique_lock lock(b.tools_mu);
    b.tools = std::move(fresh);
    return Status::Ok();
  }
};

// The kernel's view of one server: Check() before policy, Invoke() as the effect.
class ServerProvider final : public kernel::ToolProvider {
 public:
  ServerProvider(std::shared_ptr<Shared> shared, Backend* backend)
      : shared_(std::move(shared)), b_(backend) {}

  Status Check(const std::string& target) const override {
    std::shared_lock life(shared_->life_mu, std::defer_lock);
    if (!LockLife(life) || shared_->closed)
      return Status(Reason::kMcpServerUnavailable, "the gateway is shutting down");
    const std::string rest = target.substr(b_->config.name.size() + 1);
    if (rest.starts_with("client/")) {
      auto it = kClientMethods.find(rest.substr(7));
      const auto& offered = b_->config.client_capabilities;
      if (it == kClientMethods.end() ||
          std::find(offered.begin(), offered.end(), it->second) == offered.end()) {
        return Status(Reason::kMcpUnknownMethod,
                      "server '" + b_->config.name + "' was not offered '" + rest.substr(7) + "'");
      }
      return Status::Ok();
    }
    if (rest.find('/') != std::string::npos) {
      if (rest != kLogMethod && kServerMethods.count(rest) == 0)
        return Status(Reason::kMcpUnknownMethod, "method '" + rest + "' is not mediated");
      return Status::Ok();
    }
    std::shared_lock lock(b_->tools_mu);
    auto it = b_->tools.find(rest);
    if (it == b_->tools.end())
      return Status(Reason::kMcpUnknownTool,
                    "server '" + b_->config.name + "' offers no tool named '" + rest + "'");
    return it->second.usable;
  }

  Result<kernel::ToolOutput> Invoke(const kernel::ToolCall& call) override {
    std::shared_lock life(shared_->life_mu, std::defer_lock);
    if (!LockLife(life) || shared_->closed)
      return Status(Reason::kMcpServerUnavailable, "the gateway is shutting down");
    const std::string rest = call.target.substr(b_->config.name.size() + 1);
    if (rest == kLogMethod)
      return HandOverLog(call.target);
    const bool is_tool = rest.find('/') == std::string::npos;
    const bool to_client = rest.starts_with("client/");
    const std::string method = is_tool ? "tools/call" : to_client ? rest.substr(7) : rest;
    Json params = call.arguments;
    if (is_tool) {
      Json meta = params.contains("_meta") ? params["_meta"] : Json();
      params.erase("_meta");
      params = {{"name", rest}, {"arguments", params}};
      if (!meta.is_null())
        params["_meta"] = meta;
    }
    const std::string client_key = tl_client_request != nullptr ? *tl_client_request : "";
    std::function<void(int64_t)> on_sent;
    if (!client_key.empty()) {
      on_sent = [this, &client_key](int64_t id) {
        std::lock_guard lock(shared_->inflight_mu);
        shared_->inflight[client_key] = {b_, id};
      };
    }
    Result<Message> reply =
        to_client ? shared_->to_client(method, params) : b_->server->Call(method, params, on_sent);
    if (!client_key.empty()) {
      std::lock_guard lock(shared_->inflight_mu);
      shared_->inflight.erase(client_key);
    }
    CUSTOS_ASSIGN_OR_RETURN(Message m, std::move(reply));
    kernel::ToolOutput out;
    bool poisoned = false;
    if (m.type == Message::Type::kError) {
      out.frame = {{"error", {{"code", m.error_code}, {"message", m.error_message}}}};
      if (!m.error_data.is_null())
        out.frame["error"]["data"] = m.error_data;
    } else {
      Json r = m.result.is_object() ? m.result : Json::object();
      if (method == "tools/list")
        poisoned = FilterTools(&r);
      out.frame = {{"result", std::move(r)}};
    }
    out.content = out.frame.dump(-1, ' ', false, Json::error_handler_t::replace);
    poisoned = poisoned || FindInjectionMarker(out.content).has_value();
    out.labels = LabelsFor(b_->config, IsListing(method), poisoned);
    out.meta = {{"server", b_->config.name}, {"method", method}};
    return out;
  }

 private:
  // The effect of relaying a server's log message: the message itself, as the frame the kernel
  // redacts and the content it seals, labeled like content from the server.
  Result<kernel::ToolOutput> HandOverLog(const std::string& target) const {
    if (tl_log_message == nullptr) {
      return Status(Reason::kInvalidArgument,
                    "'" + target +
                        "' relays a server's log message to its session; it is not "
                        "callable");
    }
    kernel::ToolOutput out;
    out.frame = {{"result", *tl_log_message}};
    out.content = tl_log_message->dump(-1, ' ', false, Json::error_handler_t::replace);
    out.labels = LabelsFor(b_->config, false, FindInjectionMarker(out.content).has_value());
    out.meta = {{"server", b_->config.name}, {"method", std::string(kLogMethod)}};
    return out;
  }

  // Pins/inspects the listed tools, drops the unusable ones, namespaces the rest.
  bool FilterTools(Json* r) {
    if (!r->contains("tools") || !(*r)["tools"].is_array())
      return false;
    bool poisoned = false;
    Json kept = Json::array();
    for (const Json& t : (*r)["tools"]) {
      if (!t.is_object() || !t.contains("name") || !t["name"].is_string())
        continue;
      ToolState st = shared_->Inspect(*b_, t);
      const std::string name = t["name"].get<std::string>();
      const bool usable = st.usable.ok();
      poisoned = poisoned || st.poisoned;
      {
        std::unique_lock lock(b_->tools_mu);
        b_->tools[name] = std::move(st);
      }
      if (!usable)
        continue;
      Json copy = t;
      copy["name"] = shared_->ClientName(*b_, name);
      kept.push_back(std::move(copy));
    }
    (*r)["tools"] = std::move(kept);
    return poisoned;
  }

  std::shared_ptr<Shared> shared_;
  Backend* b_;
};

// One kernel provider per (kernel, "srv." prefix), shared by every gateway session that has a
// server of that name: the kernel knows one provider per prefix, and each session has its own
// server processes, tools view and taint. A call is routed to the session on whose thread it runs
// (tl_session); a call from no session (e.g. custosd's /v1/syscall) reaches the only session if
// there is exactly one (the stdio gateway's behaviour) and is refused otherwise.
class RoutingProvider final : public kernel::ToolProvider {
 public:
  Status Check(const std::string& target) const override {
    std::shared_ptr<kernel::ToolProvider> p = Pick();
    if (p == nullptr)
      return NoSession();
    return p->Check(target);
  }
  Result<kernel::ToolOutput> Invoke(const kernel::ToolCall& call) override {
    std::shared_ptr<kernel::ToolProvider> p = Pick();
    if (p == nullptr)
      return NoSession();
    return p->Invoke(call);
  }
  void Add(const void* session, std::shared_ptr<kernel::ToolProvider> p) {
    std::lock_guard lock(mu_);
    sessions_[session] = std::move(p);
  }
  bool Remove(const void* session) {  // true when no session is left
    std::lock_guard lock(mu_);
    sessions_.erase(session);
    return sessions_.empty();
  }

 private:
  static Status NoSession() {
    return Status(Reason::kMcpServerUnavailable,
                  "no single MCP gateway session owns this call (several sessions are open)");
  }
  std::shared_ptr<kernel::ToolProvider> Pick() const {
    std::lock_guard lock(mu_);
    if (tl_session != nullptr) {
      auto it = sessions_.find(tl_session);
      return it == sessions_.end() ? nullptr : it->second;
    }
    return sessions_.size() == 1 ? sessions_.begin()->second : nullptr;
  }
  mutable std::mutex mu_;
  std::map<const void*, std::shared_ptr<kernel::ToolProvider>> sessions_;
};

std::mutex g_routers_mu;
std::map<std::pair<const kernel::Kernel*, std::string>, std::shared_ptr<RoutingProvider>>
    g_routers;  // guarded by g_routers_mu

Status AttachProvider(kernel::Kernel& k, const std::string& prefix, const void* session,
                      std::shared_ptr<kernel::ToolProvider> p) {
  std::lock_guard lock(g_routers_mu);
  auto key = std::make_pair(static_cast<const kernel::Kernel*>(&k), prefix);
  auto it = g_routers.find(key);
  if (it == g_routers.end()) {
    auto router = std::make_shared<RoutingProvider>();
    CUSTOS_RETURN_IF_ERROR(k.RegisterToolProvider(prefix, router));
    it = g_routers.emplace(key, std::move(router)).first;
  }
  it->second->Add(session, std::move(p));
  return Status::Ok();
}

void DetachProvider(kernel::Kernel& k, const std::string& prefix, const void* session) {
  std::lock_guard lock(g_routers_mu);
  auto it = g_routers.find(std::make_pair(static_cast<const kernel::Kernel*>(&k), prefix));
  if (it == g_routers.end())
    return;
  if (it->second->Remove(session)) {
    k.UnregisterToolProvider(prefix).IgnoreError();
    g_routers.erase(it);
  }
}

// ---------------------------------------------------------------------------------------------

struct Gateway::Impl {
  std::shared_ptr<Shared> shared;
  std::string run;
  std::function<void(const std::string&)> send;
  std::mutex send_mu;

  std::mutex mu;
  // Empty until initialize (a 2025 era) or the first request carrying the 2026-07-28 envelope
  // (kStatelessVersion); the connection keeps that era.
  std::string client_version;
  // Stateless requests in flight (id dumped → method): their responses are shaped for the era.
  std::map<std::string, std::string> stateless_requests;
  // Open subscriptions/listen streams of a stateless client: request id (JSON) → honored filter.
  std::map<std::string, std::pair<Json, Json>> listens;  // dumped id → (id, filter)
  // The minimum log level the client asked for with logging/setLevel (2025 eras; "" = none).
  std::string client_log_level;
  // 2026-07-28 requests in flight that carried _meta logLevel: dumped id → level.
  std::map<std::string, std::string> stateless_log_levels;
  // A 2025-03-26 batch is answered with one array: its responses are collected here until the
  // last of its requests is answered (or cancelled, which has no response).
  struct PendingBatch {
    std::set<std::string> outstanding;  // request ids (dumped)
    std::vector<std::string> lines;     // responses so far
  };
  std::map<std::string, std::shared_ptr<PendingBatch>> batch_of;  // request id → its batch
  Json client_capabilities = Json::object();
  int64_t next_client_id = 1;
  std::map<std::string, std::shared_ptr<std::optional<Message>>> client_pending;  // by id
  bool client_gone = false;  // the front closed: nobody will answer client_pending
  bool client_initialized = false;
  std::map<std::string, std::string> taint;  // label-set key → handle id
  std::set<std::string> cancelled;           // client request ids (dumped)
  std::set<std::string> progress_tokens;     // active, dumped
  struct Worker {
    std::thread thread;
    std::shared_ptr<std::atomic<bool>> done;
  };
  std::list<Worker> workers;
  std::deque<std::function<void()>> tasks;  // queued for a worker (Async)
  size_t idle_workers = 0;                  // workers waiting in WorkLoop
  bool retire_workers = false;              // Shutdown: idle workers exit
  std::condition_variable work_cv;
  static constexpr std::chrono::seconds kWorkerIdle{5};
  std::condition_variable idle_cv;
  int in_flight = 0;

  bool TakeCancelled(const Json& id) {
    std::string done;
    {
      std::lock_guard lock(mu);
      if (cancelled.erase(id.dump()) == 0)
        return false;
      stateless_requests.erase(id.dump());  // no response will be sent
      stateless_log_levels.erase(id.dump());
      done = SettleInBatch(id.dump(), nullptr);
    }
    if (!done.empty()) {
      std::lock_guard lock(send_mu);
      send(done);
    }
    return true;
  }

  // Files `line` (or nothing, for a request that gets no response) as the answer to request
  // `key` if it belongs to a pending batch. Returns the whole batch's array once its last answer
  // is in, "" otherwise. *line is cleared when the batch took it. REQUIRES: mu held.
  std::string SettleInBatch(const std::string& key, std::string* line) {
    auto it = batch_of.find(key);
    if (it == batch_of.end())
      return "";
    std::shared_ptr<PendingBatch> b = it->second;
    batch_of.erase(it);
    b->outstanding.erase(key);
    if (line != nullptr) {
      b->lines.push_back(std::move(*line));
      line->clear();
    }
    return b->outstanding.empty() ? JoinBatch(*b) : "";
  }

  static std::string JoinBatch(const PendingBatch& b) {
    if (b.lines.empty())
      return "";
    std::string out = "[";
    for (size_t i = 0; i < b.lines.size(); ++i)
      out += (i ? "," : "") + b.lines[i];
    return out + "]";
  }

  std::string ClientVersion() {
    std::lock_guard lock(mu);
    return client_version;
  }

  bool ClientStateless() {
    std::lock_guard lock(mu);
    return client_version == kStatelessVersion;
  }

  static Json ServerInfo() { return {{"name", "custos-mcp-gateway"}, {"version", "0.1.0"}}; }

  void Send(Message m) {
    if (m.is_response()) {
      std::string method;
      {
        std::lock_guard lock(mu);
        stateless_log_levels.erase(m.id.dump());
        auto it = stateless_requests.find(m.id.dump());
        if (it != stateless_requests.end()) {
          method = it->second;
          stateless_requests.erase(it);
        }
      }
      if (!method.empty()) {
        if (m.type == Message::Type::kResponse)
          ToStatelessResult(method, ServerInfo(), &m.result);
        else
          m.error_code = ErrorCodeForEra(m.error_code, true);
      }
    }
    std::string line = m.Serialize();
    if (m.is_response()) {
      std::lock_guard lock(mu);
      std::string whole = SettleInBatch(m.id.dump(), &line);
      if (line.empty())
        line = std::move(whole);  // "" while the batch waits for more answers
    }
    if (line.empty())
      return;
    std::lock_guard lock(send_mu);
    send(line);
  }

  std::vector<std::string> TaintInputs() {
    std::lock_guard lock(mu);
    std::vector<std::string> v;
    for (const auto& [k, h] : taint)
      v.push_back(h);
    return v;
  }

  void AddTaint(const kernel::HandleInfo& h) {
    std::string key;
    for (const std::string& n : h.labels.Names())
      key += n + ",";
    std::lock_guard lock(mu);
    if (taint.size() < kernel::kMaxInputs)
      taint.emplace(key, h.id);
  }

  // One mediated call: a tool.invoke syscall. Returns the server's answer (result or error) or
  // the kernel's refusal as a JSON-RPC error message for `id`.
  Result<Json> Mediated(const std::string& target, const Json& arguments, const Json& id,
                        Message* error_out) {
    kernel::Syscall call;
    call.agent = shared->config.agent;
    call.run = run;
    call.kind = SyscallKind::kToolInvoke;
    call.target = target;
    call.args = {{"arguments", arguments.is_object() ? arguments : Json::object()}};
    call.inputs = TaintInputs();
    shared->wallet->Attach(call);
    const std::string key = id.dump();
    tl_client_request = &key;
    tl_session = shared.get();
    kernel::SyscallResult r = shared->kernel->Execute(call);
    tl_session = nullptr;
    tl_client_request = nullptr;
    // The server's log messages during the call were relayed (on its reader thread) before its
    // answer was read: summarise them with the call, before the client sees the answer.
    FlushAllLogs();
    if (r.handle)
      AddTaint(*r.handle);
    if (!r.decision.allowed()) {
      const Decision& d = r.decision;
      const Status st(d.reason, d.explanation);
      Json data = {{"reason", std::string(ReasonName(d.reason))},
                   {"stage", d.stage},
                   {"rule", d.rule},
                   {"decision_seq", r.receipt.decision_seq}};
      if (!d.suggestion.empty())
        data["suggestion"] = d.suggestion;
      const int code =
          d.reason == Reason::kMcpUnknownMethod ? kMethodNotFound
          : d.reason == Reason::kMcpServerUnavailable || d.reason == Reason::kEffectTimeout
              ? kServerUnavailable
          : d.reason == Reason::kMcpUnknownTool ? kInvalidParams
                                                : kDenied;
      *error_out = Message::Error(
          id, code, std::string(ReasonName(d.reason)) + ": " + d.explanation, std::move(data));
      return Status(d.reason, d.explanation);
    }
    const Json& f = r.frame;
    if (f.is_object() && f.contains("error")) {
      const Json& e = f["error"];
      *error_out = Message::Error(id, e.value("code", kInternalError), e.value("message", ""),
                                  e.value("data", Json()));
      return Status(Reason::kEffectFailed, "server error");
    }
    return f.is_object() && f.contains("result") ? f["result"] : Json::object();
  }

  // A paginated list across servers: one server page per client page.
  void List(const Message& req, const std::string& method, const std::string& key) {
    size_t server = 0;
    Json cursor;
    if (req.params.is_object() && req.params.contains("cursor")) {
      if (!req.params["cursor"].is_string()) {
        Send(Message::Error(req.id, kInvalidParams, "cursor must be a string"));
        return;
      }
      Result<std::pair<size_t, Json>> c = DecodeCursor(req.params["cursor"].get<std::string>());
      if (!c.ok() || c->first >= shared->backends.size()) {
        Send(Message::Error(req.id, kInvalidParams, "invalid cursor"));
        return;
      }
      server = c->first;
      cursor = c->second;
    }
    Json items = Json::array();
    Json next;
    for (; server < shared->backends.size(); ++server, cursor = Json()) {
      Backend& b = *shared->backends[server];
      if (!ServerSupports(b, method))
        continue;
      Json args = Json::object();
      if (!cursor.is_null())
        args["cursor"] = cursor;
      Message err;
      Result<Json> r = Mediated(b.config.name + "." + method, args, req.id, &err);
      if (!r.ok()) {
        // One server down must not hide the others: skip it (its refusal is in the log).
        continue;
      }
      for (Json& it : (*r)[key]) {
        Rename(b, method, &it);
        items.push_back(std::move(it));
      }
      if (r->contains("nextCursor") && (*r)["nextCursor"].is_string()) {
        next = EncodeCursor(server, (*r)["nextCursor"]);
      } else if (server + 1 < shared->backends.size()) {
        next = EncodeCursor(server + 1, Json());
      }
      break;
    }
    Json result = {{key, std::move(items)}};
    if (!next.is_null())
      result["nextCursor"] = next;
    DowngradeForClient(ClientVersion(), method, &result);
    Send(Message::Response(req.id, std::move(result)));
  }

  static bool ServerSupports(const Backend& b, const std::string& method) {
    const Json caps = b.server->capabilities();
    const std::string family = method.substr(0, method.find('/'));
    if (family == "completion")
      return caps.contains("completions");
    if (family == "logging")
      return caps.contains("logging");
    // Before the first successful start we do not know: ask (the call then fails cleanly).
    return caps.is_null() || caps.empty() || caps.contains(family);
  }

  void Rename(const Backend& b, const std::string& method, Json* item) const {
    if (!item->is_object())
      return;
    if (method == "prompts/list" && item->contains("name") && (*item)["name"].is_string()) {
      (*item)["name"] = shared->ClientName(b, (*item)["name"].get<std::string>());
    } else if (method == "resources/list" && item->contains("uri") && (*item)["uri"].is_string()) {
      (*item)["uri"] = shared->ClientUri(b, (*item)["uri"].get<std::string>());
    } else if (method == "resources/templates/list" && item->contains("uriTemplate") &&
               (*item)["uriTemplate"].is_string()) {
      (*item)["uriTemplate"] = shared->ClientUri(b, (*item)["uriTemplate"].get<std::string>());
    }
  }

  // "srv.name" → (backend, "name").
  std::pair<Backend*, std::string> SplitName(const Json& v) {
    if (!v.is_string())
      return {nullptr, ""};
    const std::string s = v.get<std::string>();
    if (!shared->config.namespaces)
      return {shared->backends.empty() ? nullptr : shared->backends.front().get(), s};
    const size_t dot = s.find('.');
    if (dot == std::string::npos)
      return {nullptr, ""};
    return {shared->Find(s.substr(0, dot)), s.substr(dot + 1)};
  }

  // "srv+uri" → (backend, "uri").
  std::pair<Backend*, std::string> SplitUri(const Json& v) {
    if (!v.is_string())
      return {nullptr, ""};
    const std::string s = v.get<std::string>();
    if (!shared->config.namespaces)
      return {shared->backends.empty() ? nullptr : shared->backends.front().get(), s};
    const size_t plus = s.find('+');
    const size_t colon = s.find(':');
    if (plus == std::string::npos || (colon != std::string::npos && colon < plus))
      return {nullptr, ""};
    return {shared->Find(s.substr(0, plus)), s.substr(plus + 1)};
  }

  void Forward(const Message& req, Backend* b, const std::string& method, Json params,
               const std::string& what) {
    if (b == nullptr) {
      const int code = method == "resources/read" ? kResourceNotFound : kInvalidParams;
      Send(Message::Error(req.id, code, "no downstream server offers " + what,
                          StatusData(Status(Reason::kMcpUnknownTool, ""))));
      return;
    }
    const bool is_tool = method == "tools/call";
    Message err;
    Result<Json> r =
        Mediated(b->config.name + "." + (is_tool ? what : method), params, req.id, &err);
    if (TakeCancelled(req.id))
      return;  // the client cancelled: no response (MCP cancellation)
    if (!r.ok()) {
      Send(err);
      return;
    }
    Json result = std::move(r).value();
    if (method == "resources/read" && result.contains("contents") &&
        result["contents"].is_array()) {
      for (Json& c : result["contents"]) {
        if (c.is_object() && c.contains("uri") && c["uri"].is_string())
          c["uri"] = shared->ClientUri(*b, c["uri"].get<std::string>());
      }
    }
    DowngradeForClient(ClientVersion(), method, &result);
    Send(Message::Response(req.id, std::move(result)));
  }

  void Handle(const Message& req) {
    const std::string& m = req.method;
    const Json p = req.params.is_object() ? req.params : Json::object();
    if (m == "ping") {
      Send(Message::Response(req.id, Json::object()));
    } else if (m == "tools/list") {
      List(req, m, "tools");
    } else if (m == "resources/list") {
      List(req, m, "resources");
    } else if (m == "resources/templates/list") {
      List(req, m, "resourceTemplates");
    } else if (m == "prompts/list") {
      List(req, m, "prompts");
    } else if (m == "tools/call") {
      auto [b, name] = SplitName(p.value("name", Json()));
      Json args = p.value("arguments", Json::object());
      if (p.contains("_meta") && args.is_object())
        args["_meta"] = p["_meta"];
      Forward(req, b, m, std::move(args), b ? name : "this tool");
    } else if (m == "prompts/get") {
      auto [b, name] = SplitName(p.value("name", Json()));
      Json params = p;
      params["name"] = name;
      Forward(req, b, m, std::move(params), "this prompt");
    } else if (m == "resources/read" || m == "resources/subscribe" ||
               m == "resources/unsubscribe") {
      auto [b, uri] = SplitUri(p.value("uri", Json()));
      Json params = p;
      params["uri"] = uri;
      Forward(req, b, m, std::move(params), "this resource");
    } else if (m == "completion/complete") {
      Json params = p;
      const Json ref = p.value("ref", Json::object());
      std::pair<Backend*, std::string> target{nullptr, ""};
      if (ref.value("type", "") == "ref/prompt") {
        target = SplitName(ref.value("name", Json()));
        params["ref"]["name"] = target.second;
      } else if (ref.value("type", "") == "ref/resource") {
        target = SplitUri(ref.value("uri", Json()));
        params["ref"]["uri"] = target.second;
      }
      Forward(req, target.first, m, std::move(params), "this completion reference");
    } else if (m == "logging/setLevel") {
      if (LogSeverity(p.value("level", Json())) < 0) {
        Send(Message::Error(req.id, kInvalidParams,
                            "params.level must be one of debug, info, notice, warning, error, "
                            "critical, alert, emergency",
                            StatusData(Status(Reason::kInvalidArgument, ""))));
        return;
      }
      {
        std::lock_guard lock(mu);
        client_log_level = p["level"].get<std::string>();
      }
      for (auto& b : shared->backends) {
        if (ServerSupports(*b, m)) {
          Message err;
          (void)Mediated(b->config.name + "." + m, p, req.id, &err);
        }
      }
      Send(Message::Response(req.id, Json::object()));
    } else {
      Refuse(req);
    }
  }

  void Refuse(const Message& req) {
    shared->Event("mcp.refused", {{"method", req.method.substr(0, 128)}, {"run", run}});
    Send(
        Message::Error(req.id, kMethodNotFound,
                       "method '" + req.method.substr(0, 128) + "' is not supported by the gateway",
                       StatusData(Status(Reason::kMcpUnknownMethod, ""))));
  }

  void Initialize(const Message& req) {
    const std::string asked = req.params.is_object() ? req.params.value("protocolVersion", "") : "";
    const std::string v = IsSupportedVersion(asked) ? asked : std::string(kLatestVersion);
    {
      std::lock_guard lock(mu);
      client_version = v;
      client_capabilities = req.params.is_object() && req.params.contains("capabilities") &&
                                    req.params["capabilities"].is_object()
                                ? req.params["capabilities"]
                                : Json::object();
    }
    Json caps = {{"tools", {{"listChanged", true}}},
                 {"resources", {{"listChanged", true}, {"subscribe", true}}},
                 {"prompts", {{"listChanged", true}}},
                 {"completions", Json::object()},
                 {"logging", Json::object()}};
    Send(Message::Response(
        req.id, {{"protocolVersion", v},
                 {"capabilities", caps},
                 {"serverInfo", {{"name", "custos-mcp-gateway"}, {"version", "0.1.0"}}}}));
  }

  void OnClientNotification(const Message& n) {
    if (n.method == "notifications/initialized") {
      std::lock_guard lock(mu);
      client_initialized = true;
    } else if (n.method == "notifications/cancelled") {
      if (n.params.is_object() && n.params.contains("requestId")) {
        const std::string key = n.params["requestId"].dump();
        {
          std::lock_guard lock(mu);
          if (listens.erase(key) != 0) {
            stateless_log_levels.erase(key);
            return;  // a subscriptions/listen stream ends: no response
          }
        }
        {
          std::lock_guard lock(mu);
          if (cancelled.size() < 4096)
            cancelled.insert(key);
        }
        // Tell the server working on it, and end the wait (the server is not hung).
        std::shared_lock life(shared->life_mu);
        std::pair<Backend*, int64_t> target{nullptr, 0};
        {
          std::lock_guard lock(shared->inflight_mu);
          auto it = shared->inflight.find(key);
          if (it != shared->inflight.end())
            target = it->second;
        }
        if (!shared->closed && target.first != nullptr && target.first->server != nullptr) {
          const std::string reason = n.params.contains("reason") && n.params["reason"].is_string()
                                         ? n.params["reason"].get<std::string>().substr(0, 256)
                                         : "cancelled by the client";
          target.first->server->Cancel(target.second, reason);
        }
      }
    }
    // Other client notifications (progress for requests we never send, roots/list_changed for a
    // capability we never offer servers) are dropped, never forwarded.
  }

  void OnServerNotification(Backend& b, const Message& n) {
    bool stateless;
    {
      std::lock_guard lock(mu);
      if (client_version.empty())
        return;
      stateless = client_version == kStatelessVersion;
    }
    const std::string& m = n.method;
    if (m == kLogMethod) {
      RelayLog(b, n);
      return;
    }
    if (stateless && m != "notifications/progress") {
      // The stateless era delivers change notifications only on subscriptions/listen streams.
      const char* bit = m == "notifications/tools/list_changed"       ? "toolsListChanged"
                        : m == "notifications/prompts/list_changed"   ? "promptsListChanged"
                        : m == "notifications/resources/list_changed" ? "resourcesListChanged"
                                                                      : nullptr;
      if (bit == nullptr)
        return;  // resources/updated: resource subscriptions are not honored (docs/mcp.md)
      Backend* bp = &b;
      Async([this, bp, m, bit] {
        if (m == "notifications/tools/list_changed")
          shared->RefreshTools(*bp).IgnoreError();  // re-inspected for pinning first
        std::vector<Json> ids;
        {
          std::lock_guard lock(mu);
          for (const auto& [key, sub] : listens) {
            if (sub.second.value(bit, false))
              ids.push_back(sub.first);
          }
        }
        for (const Json& id : ids) {
          Send(Message::Notification(
              m, {{"_meta", {{"io.modelcontextprotocol/subscriptionId", id}}}}));
        }
      });
      return;
    }
    if (m == "notifications/tools/list_changed") {
      // Not on this (the server's reader) thread: the refresh waits for the server's answer.
      Backend* bp = &b;
      Async([this, bp, n] {
        shared->RefreshTools(*bp).IgnoreError();
        Send(n);
      });
    } else if (m == "notifications/resources/list_changed" ||
               m == "notifications/prompts/list_changed") {
      Send(n);
    } else if (m == "notifications/resources/updated" && n.params.is_object() &&
               n.params.contains("uri") && n.params["uri"].is_string()) {
      Json p = n.params;
      p["uri"] = shared->ClientUri(b, p["uri"].get<std::string>());
      Send(Message::Notification(m, std::move(p)));
    } else if (m == "notifications/progress" && n.params.is_object() &&
               n.params.contains("progressToken")) {
      std::lock_guard lock(mu);
      if (progress_tokens.count(n.params["progressToken"].dump()) == 0)
        return;
      // Progress only for a request the client made and still waits for.
      Send(n);
    }
    // Anything else is not relayed (docs/mcp.md).
  }

  // Whether a log message is relayed at all (before the kernel decides it); counts it if not.
  static bool AdmitLog(Backend& b, bool requested, int severity, bool has_data,
                       const std::string& min_level) {
    const int64_t now = SteadyMs();
    std::lock_guard lock(b.log_mu);
    LogTally& t = b.log;
    if (t.empty())
      t.since_ms = now;
    if (!requested) {
      ++t.not_requested;
      return false;
    }
    if (severity < 0 || !has_data) {
      ++t.malformed;
      return false;
    }
    if (!min_level.empty() && severity < LogSeverity(min_level)) {
      ++t.below_level;
      return false;
    }
    // The transport caps a stdio server's notifications; this caps any server's logs.
    if (now - t.window_ms >= 1000) {
      t.window_ms = now;
      t.in_window = 0;
    }
    if (++t.in_window > b.config.max_notifications_per_sec) {
      ++t.over_cap;
      return false;
    }
    return true;
  }

  // A server's log message (decision 030). On the server's reader thread, so messages keep their
  // order and go out before the response that follows them.
  void RelayLog(Backend& b, const Message& n) {
    std::string min_level;
    bool requested = true;
    {
      std::lock_guard lock(mu);
      if (client_version.empty())
        return;
      if (client_version == kStatelessVersion) {
        // The era sends logs only for a request that asked (its _meta logLevel); the lowest
        // level asked by a request still in flight applies.
        requested = !stateless_log_levels.empty();
        for (const auto& [id, level] : stateless_log_levels) {
          if (min_level.empty() || LogSeverity(level) < LogSeverity(min_level))
            min_level = level;
        }
      } else {
        min_level = client_log_level;
      }
    }
    const Json p = n.params.is_object() ? n.params : Json::object();
    const int severity = LogSeverity(p.value("level", Json()));
    if (!AdmitLog(b, requested, severity, p.contains("data"), min_level)) {
      FlushLogs(b, false);  // a summary is due even when nothing is relayed
      return;
    }
    Json relay = {{"level", p["level"]}};
    std::string logger = p.contains("logger") && p["logger"].is_string()
                             ? p["logger"].get<std::string>().substr(0, 128)
                             : std::string();
    if (shared->config.namespaces)
      relay["logger"] = logger.empty() ? b.config.name : b.config.name + "." + logger;
    else if (!logger.empty())
      relay["logger"] = logger;
    // The decision sees who logs and how loudly; the data goes to the client, not to a server,
    // so it is redacted rather than egress-scanned.
    kernel::Syscall call;
    call.agent = shared->config.agent;
    call.run = run;
    call.kind = SyscallKind::kToolInvoke;
    call.target = b.config.name + "." + std::string(kLogMethod);
    call.args = {{"arguments", relay}};
    call.inputs = TaintInputs();
    shared->wallet->Attach(call);
    relay["data"] = p["data"];
    const std::string original = relay["data"].dump(-1, ' ', false, Json::error_handler_t::replace);
    const labels::LabelSet labels =
        LabelsFor(b.config, false,
                  FindInjectionMarker(relay.dump(-1, ' ', false, Json::error_handler_t::replace))
                      .has_value());
    std::string label_key;
    for (const std::string& l : labels.Names())
      label_key += l + ",";
    tl_session = shared.get();
    tl_transport_thread = true;
    Decision d = shared->kernel->Explain(call);
    if (d.allowed()) {
      bool fresh;
      {
        std::lock_guard lock(b.log_mu);
        fresh = b.log_label_sets.count(label_key) == 0;
      }
      if (fresh) {
        // The first message with these labels is a recorded syscall: its output handle joins
        // the session's taint, so later decisions see what the client was shown.
        tl_log_message = &relay;
        kernel::SyscallResult r = shared->kernel->Execute(call);
        tl_log_message = nullptr;
        d = r.decision;
        if (r.handle)
          AddTaint(*r.handle);
        if (d.allowed()) {
          relay = r.frame.is_object() && r.frame.contains("result") ? r.frame["result"] : Json();
          std::lock_guard lock(b.log_mu);
          b.log_label_sets.insert(label_key);
        }
      } else {
        relay = shared->kernel->RedactSecrets(relay);
      }
    }
    tl_transport_thread = false;
    tl_session = nullptr;
    if (!d.allowed() || !relay.is_object() || !relay.contains("data")) {
      std::lock_guard lock(b.log_mu);
      ++b.log.denied;
      if (b.log.first_denial.is_null()) {
        b.log.first_denial = {
            {"reason", std::string(ReasonName(d.reason))}, {"stage", d.stage}, {"rule", d.rule}};
      }
      return;
    }
    Message note = Message::Notification(std::string(kLogMethod), relay);
    const std::string line = note.Serialize();
    Send(std::move(note));
    {
      std::lock_guard lock(b.log_mu);
      LogTally& t = b.log;
      ++t.relayed;
      if (relay["data"].dump(-1, ' ', false, Json::error_handler_t::replace) != original)
        ++t.redacted;
      ++t.levels[relay["level"].get<std::string>()];
      t.digest = crypto::Sha256(t.digest + line).Hex();
    }
    FlushLogs(b, false);
  }

  // Records what happened to a server's log messages since the last summary: after every mediated
  // call (a per-call summary), at most every kLogSummaryEveryMs otherwise, and at shutdown.
  void FlushLogs(Backend& b, bool force) {
    Json details;
    {
      std::lock_guard lock(b.log_mu);
      LogTally& t = b.log;
      if (t.empty() || (!force && SteadyMs() - t.since_ms < kLogSummaryEveryMs))
        return;
      details = {{"server", b.config.name},
                 {"run", run},
                 {"relayed", t.relayed},
                 {"redacted", t.redacted},
                 {"denied", t.denied},
                 {"below_level", t.below_level},
                 {"not_requested", t.not_requested},
                 {"over_cap", t.over_cap},
                 {"malformed", t.malformed},
                 {"levels", t.levels}};
      if (!t.digest.empty())
        details["sha256"] = t.digest;
      if (!t.first_denial.is_null())
        details["first_denial"] = t.first_denial;
      const int64_t window = t.window_ms;
      const int64_t in_window = t.in_window;
      t = LogTally();
      t.window_ms = window;
      t.in_window = in_window;
    }
    shared->Event("mcp.server.log", details);
  }

  void FlushAllLogs() {
    for (auto& b : shared->backends)
      FlushLogs(*b, true);
  }

  void OnServerRequest(Backend& b, const Message& r) {
    if (r.method == "ping") {
      b.server->Respond(Message::Response(r.id, Json::object())).IgnoreError();
      return;
    }
    if (kClientMethods.count(r.method) == 0 || b.server->stateless()) {
      shared->Event("mcp.server_request.refused",
                    {{"server", b.config.name}, {"method", r.method.substr(0, 128)}});
      b.server
          ->Respond(Message::Error(
              r.id, kMethodNotFound,
              "the gateway does not offer '" + r.method.substr(0, 128) + "' to servers"))
          .IgnoreError();
      return;
    }
    // A server asking the client (sampling, elicitation, roots) is a syscall too; not on the
    // server's reader thread, which must keep reading while the client answers.
    Backend* bp = &b;
    Async([this, bp, r] {
      Message err;
      Result<Json> res = Mediated(bp->config.name + ".client/" + r.method,
                                  r.params.is_object() ? r.params : Json::object(), r.id, &err);
      std::shared_lock life(shared->life_mu);
      if (shared->closed || bp->server == nullptr)
        return;
      bp->server->Respond(res.ok() ? Message::Response(r.id, *res) : err).IgnoreError();
    });
  }

  // The gateway's own request to the client (the effect of a server → client syscall).
  Result<Message> ToClient(const std::string& method, const Json& params) {
    const std::string family = kClientMethods.at(method);
    auto slot = std::make_shared<std::optional<Message>>();
    Json id;
    {
      std::lock_guard lock(mu);
      if (client_version == kStatelessVersion) {
        return Message::Error(nullptr, kMethodNotFound,
                              "the client speaks " + std::string(kStatelessVersion) +
                                  ", which has no server-to-client requests (the gateway does not "
                                  "carry input_required results)");
      }
      if (!client_capabilities.contains(family)) {
        return Message::Error(nullptr, kMethodNotFound,
                              "the client does not offer '" + family + "'");
      }
      id = "custos-" + std::to_string(next_client_id++);
      client_pending[id.dump()] = slot;
    }
    Send(Message::Request(id, method, params));
    std::unique_lock lock(mu);
    const bool answered = idle_cv.wait_for(lock, std::chrono::seconds(120),
                                           [&] { return slot->has_value() || client_gone; });
    client_pending.erase(id.dump());
    if (!answered || !slot->has_value())
      return Status(Reason::kEffectTimeout, "the client did not answer " + method);
    return std::move(**slot);
  }

  void Dispatch(Message req) {
    std::string token;
    if (req.params.is_object() && req.params.contains("_meta") && req.params["_meta"].is_object() &&
        req.params["_meta"].contains("progressToken")) {
      token = req.params["_meta"]["progressToken"].dump();
    }
    {
      std::lock_guard lock(mu);
      if (!token.empty())
        progress_tokens.insert(token);
    }
    Async([this, req = std::move(req), token] {
      Handle(req);
      if (!token.empty()) {
        std::lock_guard l(mu);
        progress_tokens.erase(token);
      }
    });
  }

  // Runs `fn` on a worker thread of its own: a task never waits for another (a call may wait for
  // the client's answer to a server request, which other tasks deliver). Workers are reused: one
  // that finishes waits up to kWorkerIdle for the next task before it exits, so a busy session
  // does not create (and unmap) a thread per request.
  void Async(std::function<void()> fn) {
    std::lock_guard lock(mu);
    // Exited workers are joined here, so the list stays as long as the pool.
    for (auto it = workers.begin(); it != workers.end();) {
      if (it->done->load()) {
        it->thread.join();
        it = workers.erase(it);
      } else {
        ++it;
      }
    }
    ++in_flight;
    tasks.push_back(std::move(fn));
    if (tasks.size() <= idle_workers) {
      work_cv.notify_one();
      return;
    }
    auto done = std::make_shared<std::atomic<bool>>(false);
    workers.push_back(Worker{std::thread([this, done] { WorkLoop(*done); }), done});
  }

  void WorkLoop(std::atomic<bool>& done) {
    std::unique_lock lock(mu);
    while (true) {
      while (tasks.empty()) {
        if (retire_workers)
          break;
        ++idle_workers;
        const bool woken =
            work_cv.wait_for(lock, kWorkerIdle, [&] { return !tasks.empty() || retire_workers; });
        --idle_workers;
        if (!woken)
          break;
      }
      if (tasks.empty())
        break;
      std::function<void()> fn = std::move(tasks.front());
      tasks.pop_front();
      lock.unlock();
      fn();
      fn = nullptr;  // its captures go before the task counts as done
      lock.lock();
      --in_flight;
      idle_cv.notify_all();
    }
    done.store(true);
  }

  // A request carrying the 2026-07-28 envelope (docs/mcp.md "Protocol eras"): no initialize;
  // the envelope is checked on every request, then stripped before the request is mediated.
  void HandleStateless(Message msg) {
    Result<Envelope> env = ParseEnvelope(msg.params);
    if (!env.ok()) {
      if (env.status().reason() == Reason::kMcpVersionUnsupported) {
        const Json& v = msg.params["_meta"][std::string(kMetaProtocolVersion)];
        Send(UnsupportedVersionError(msg.id, v.is_string() ? v.get<std::string>() : ""));
      } else {
        Send(Message::Error(msg.id, kInvalidParams, std::string(env.status().message()),
                            StatusData(env.status())));
      }
      return;
    }
    std::string pinned;
    {
      std::lock_guard lock(mu);
      pinned = client_version;
    }
    if (!pinned.empty() && pinned != kStatelessVersion) {
      Send(Message::Error(msg.id, kInvalidRequest,
                          "this connection negotiated protocol version " + pinned +
                              " with initialize; a request for " + std::string(kStatelessVersion) +
                              " needs its own connection",
                          StatusData(Status(Reason::kMcpProtocolError, ""))));
      return;
    }
    if (!IsStatelessMethod(msg.method)) {
      // initialize, ping, logging/setLevel, resources/(un)subscribe do not exist in the era.
      shared->Event("mcp.refused", {{"method", msg.method.substr(0, 128)},
                                    {"run", run},
                                    {"protocol_version", std::string(kStatelessVersion)}});
      Send(Message::Error(msg.id, kMethodNotFound,
                          "method '" + msg.method.substr(0, 128) +
                              "' is not served by the gateway in protocol revision " +
                              std::string(kStatelessVersion),
                          StatusData(Status(Reason::kMcpUnknownMethod, ""))));
      return;
    }
    // The era's per-request logging opt-in: logs are relayed while this request is in flight.
    const Json& log_level = msg.params["_meta"].value(std::string(kMetaLogLevel), Json());
    if (!log_level.is_null() && LogSeverity(log_level) < 0) {
      const Status st(Reason::kMcpEnvelopeInvalid,
                      "params._meta[\"" + std::string(kMetaLogLevel) +
                          "\"] must be one of debug, info, notice, warning, error, critical, "
                          "alert, emergency");
      Send(Message::Error(msg.id, kInvalidParams, std::string(st.message()), StatusData(st)));
      return;
    }
    {
      std::lock_guard lock(mu);
      if (log_level.is_string() && msg.method != "server/discover")
        stateless_log_levels[msg.id.dump()] = log_level.get<std::string>();
      if (msg.method != "server/discover") {
        client_version = std::string(kStatelessVersion);  // the era of this connection
        client_initialized = true;
        client_capabilities = env->client_capabilities;
      }
      stateless_requests[msg.id.dump()] = msg.method;
    }
    if (msg.method == "subscriptions/listen") {
      Listen(msg);
      return;
    }
    if (msg.method == "server/discover") {
      // listChanged rides subscriptions/listen; no subscribe (resource subscriptions are not
      // honored yet); logging: server log messages are relayed for requests whose _meta asks
      // (the era deprecates logging but keeps the per-request opt-in).
      const Json caps = {{"tools", {{"listChanged", true}}},
                         {"resources", {{"listChanged", true}}},
                         {"prompts", {{"listChanged", true}}},
                         {"completions", Json::object()},
                         {"logging", Json::object()}};
      Send(Message::Response(msg.id, {{"supportedVersions", Json::array({kStatelessVersion})},
                                      {"capabilities", caps}}));
      return;
    }
    msg.params = StripEnvelope(msg.params);
    Dispatch(std::move(msg));
  }

  // subscriptions/listen (2026-07-28): acknowledged with the honored subset of the filter, then
  // the list_changed notifications it asked for are sent stamped with its id; it ends with the
  // client's notifications/cancelled and never gets a result while the connection lives.
  void Listen(const Message& msg) {
    const Json filter = msg.params.is_object() ? msg.params.value("notifications", Json()) : Json();
    if (!filter.is_object()) {
      Send(Message::Error(msg.id, kInvalidParams,
                          "subscriptions/listen needs params.notifications (a filter object)"));
      return;
    }
    Json honored = Json::object();
    for (const char* bit : {"toolsListChanged", "promptsListChanged", "resourcesListChanged"}) {
      if (filter.value(bit, false) == true)
        honored[bit] = true;
    }
    bool full = false;
    {
      std::lock_guard lock(mu);
      full = listens.size() >= 64;
      if (!full) {
        stateless_requests.erase(msg.id.dump());  // answered by notifications, not a result
        listens[msg.id.dump()] = {msg.id, honored};
      }
    }
    if (full) {
      Send(Message::Error(msg.id, kInternalError, "Subscription limit reached"));
      return;
    }
    Send(Message::Notification("notifications/subscriptions/acknowledged",
                               {{"notifications", honored},
                                {"_meta", {{"io.modelcontextprotocol/subscriptionId", msg.id}}}}));
  }

  void HandleOne(Message msg) {
    if (msg.is_response()) {
      std::lock_guard lock(mu);
      auto it = client_pending.find(msg.id.dump());
      if (it != client_pending.end()) {
        *it->second = std::move(msg);
        idle_cv.notify_all();
      }
      return;  // an answer to nothing we asked is dropped
    }
    if (msg.is_notification()) {
      OnClientNotification(msg);
      return;
    }
    if (HasEnvelopeClaim(msg.params)) {
      HandleStateless(std::move(msg));
      return;
    }
    if (ClientStateless()) {
      // A 2025-era request on a connection that speaks 2026-07-28.
      if (msg.method == "initialize") {
        const std::string asked =
            msg.params.is_object() ? msg.params.value("protocolVersion", "") : "";
        Send(UnsupportedVersionError(msg.id, asked));
      } else {
        const Status st(Reason::kMcpEnvelopeInvalid,
                        "this connection speaks protocol revision " +
                            std::string(kStatelessVersion) + "; params._meta must carry " +
                            std::string(kMetaProtocolVersion) + " and " +
                            std::string(kMetaClientCapabilities));
        Send(Message::Error(msg.id, kInvalidParams, std::string(st.message()), StatusData(st)));
      }
      return;
    }
    if (msg.method == "initialize") {
      Initialize(msg);
      return;
    }
    bool ready;
    {
      std::lock_guard lock(mu);
      ready = !client_version.empty();
    }
    if (!ready && msg.method != "ping") {
      Send(Message::Error(msg.id, kInvalidRequest, "initialize first"));
      return;
    }
    Dispatch(std::move(msg));
  }
};

Gateway::Gateway(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Gateway::~Gateway() { Shutdown(); }

const std::string& Gateway::run() const { return impl_->run; }

Result<std::unique_ptr<Gateway>> Gateway::Create(GatewayOptions options) {
  if (options.kernel == nullptr || !options.send)
    return Status(Reason::kInvalidArgument, "a gateway needs a kernel and a client sink");
  auto impl = std::make_unique<Impl>();
  impl->shared = std::make_shared<Shared>();
  impl->shared->config = options.config;
  impl->shared->kernel = options.kernel;
  impl->shared->wallet = std::make_unique<kernel::TokenWallet>(*options.kernel);
  impl->run = options.run.empty() ? crypto::RandomId("mcp_") : options.run;
  impl->send = std::move(options.send);
  Impl* raw = impl.get();
  Shared* shared = impl->shared.get();
  shared->to_client = [raw](const std::string& m, const Json& p) { return raw->ToClient(m, p); };
  for (const ServerConfig& sc : options.config.servers) {
    auto b = std::make_unique<Backend>();
    b->config = sc;
    Backend* bp = b.get();
    Downstream::Callbacks cb;
    cb.on_notification = [raw, bp](const Message& m) { raw->OnServerNotification(*bp, m); };
    cb.on_request = [raw, bp](const Message& m) { raw->OnServerRequest(*bp, m); };
    cb.on_event = [shared](const std::string& e, const Json& d) { shared->Event(e, d); };
    b->server = MakeDownstream(sc, std::move(cb));
    impl->shared->backends.push_back(std::move(b));
  }
  for (size_t i = 0; i < impl->shared->backends.size(); ++i) {
    Backend* b = impl->shared->backends[i].get();
    Status st = AttachProvider(*options.kernel, b->config.name + ".", shared,
                               std::make_shared<ServerProvider>(impl->shared, b));
    if (!st.ok()) {
      for (size_t j = 0; j < i; ++j) {
        DetachProvider(*options.kernel, impl->shared->backends[j]->config.name + ".", shared);
      }
      return st;
    }
  }
  // Mint the session's token now, so concurrent first calls share one grant (one revocation id
  // in the log for the operator to revoke). An agent the policy does not define gets none; its
  // calls are then refused by the kernel.
  (void)impl->shared->wallet->TokenFor(impl->shared->config.agent, impl->run);
  // Start every server in parallel; a failure is recorded and retried on first use.
  std::vector<std::thread> starters;
  for (auto& b : impl->shared->backends) {
    Backend* bp = b.get();
    starters.emplace_back([shared, bp] {
      Status st = bp->server->Start();
      if (st.ok())
        st = shared->RefreshTools(*bp);
      if (!st.ok()) {
        shared->Event("mcp.server.start_failed",
                      {{"server", bp->config.name}, {"error", std::string(st.message())}});
      }
    });
  }
  for (std::thread& t : starters)
    t.join();
  return std::unique_ptr<Gateway>(new Gateway(std::move(impl)));
}

void Gateway::HandleLine(std::string_view line) {
  Impl& g = *impl_;
  while (!line.empty() && (line.back() == '\r' || line.back() == ' '))
    line.remove_suffix(1);
  if (line.empty())
    return;
  std::string version;
  {
    std::lock_guard lock(g.mu);
    version = g.client_version;
  }
  // Batches exist only in 2025-03-26; later eras removed them.
  Result<Batch> batch = ParseBatch(line);
  if (!batch.ok()) {
    g.Send(Message::Error(Json(), ErrorCodeFor(batch.status()),
                          std::string(batch.status().message())));
    return;
  }
  if (batch->was_array && version != "2025-03-26") {
    g.Send(Message::Error(Json(), kInvalidRequest,
                          "JSON-RPC batches are not allowed in protocol version " +
                              (version.empty() ? std::string("negotiation") : version)));
    return;
  }
  if (!batch->was_array) {
    for (auto& [id, st] : batch->bad)
      g.Send(Message::Error(id, ErrorCodeFor(st), std::string(st.message())));
    for (Message& m : batch->messages)
      g.HandleOne(std::move(m));
    return;
  }
  // A 2025-03-26 batch: one array of responses (JSON-RPC 2.0 section 6), none if it held only
  // notifications and responses. Every request is filed before any runs, so the array cannot
  // go out before the last one is answered.
  auto pending = std::make_shared<Impl::PendingBatch>();
  for (auto& [id, st] : batch->bad)
    pending->lines.push_back(
        Message::Error(id, ErrorCodeFor(st), std::string(st.message())).Serialize());
  {
    std::lock_guard lock(g.mu);
    for (const Message& m : batch->messages) {
      if (!m.is_request())
        continue;
      const std::string key = m.id.dump();
      // An id already awaited (in this batch or an earlier one) is answered on its own line.
      if (g.batch_of.count(key) == 0 && pending->outstanding.insert(key).second)
        g.batch_of[key] = pending;
    }
  }
  const bool any_request = !pending->outstanding.empty();
  for (Message& m : batch->messages)
    g.HandleOne(std::move(m));
  if (!any_request) {
    const std::string whole = Impl::JoinBatch(*pending);
    if (!whole.empty()) {
      std::lock_guard lock(g.send_mu);
      g.send(whole);
    }
  }
}

void Gateway::SendError(const Json& id, int code, const std::string& message) {
  impl_->Send(Message::Error(id, code, message));
}

void Gateway::Shutdown() {
  Impl& g = *impl_;
  auto drain = [&g] {
    std::list<Impl::Worker> workers;
    {
      std::unique_lock lock(g.mu);
      g.idle_cv.wait(lock, [&] { return g.in_flight == 0; });
      g.retire_workers = true;
      g.work_cv.notify_all();
      workers.swap(g.workers);
    }
    for (Impl::Worker& w : workers) {
      if (w.thread.joinable())
        w.thread.join();
    }
    std::lock_guard lock(g.mu);
    g.retire_workers = false;  // a task queued later gets a fresh worker
  };
  {
    std::lock_guard lock(g.mu);
    g.client_gone = true;
    g.idle_cv.notify_all();
  }
  drain();
  {
    std::unique_lock life(g.shared->life_mu);
    if (!g.shared->closed) {
      g.shared->closed = true;
      for (auto& b : g.shared->backends)
        DetachProvider(*g.shared->kernel, b->config.name + ".", g.shared.get());
      for (auto& b : g.shared->backends)
        b->server.reset();  // kills the process group and joins its reader threads
    }
  }
  drain();  // work a last server notification queued before its reader stopped
  g.FlushAllLogs();
}

Status ApprovePendingDescriptor(store::Store& store, const std::string& tool) {
  CUSTOS_ASSIGN_OR_RETURN(std::optional<std::string> pending, store.GetMeta(PendingKey(tool)));
  if (!pending)
    return Status(Reason::kNotFound, "no pending descriptor for tool '" + tool + "'");
  CUSTOS_ASSIGN_OR_RETURN(Json j, ParseUntrustedJson(*pending));
  const std::string hash = j.value("hash", "");
  if (hash.empty())
    return Status(Reason::kInternal, "pending descriptor record has no hash");
  CUSTOS_RETURN_IF_ERROR(store.PutMeta(PinKey(tool), hash));
  return store.PutMeta(PendingKey(tool), "{}");
}

}  // namespace custos::mcp

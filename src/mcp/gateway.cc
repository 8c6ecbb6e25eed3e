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
#include "custos/crypto/keys.h"
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
    "tools/list",       "resources/list",      "resources/templates/list",
    "resources/read",   "resources/subscribe", "resources/unsubscribe",
    "prompts/list",     "prompts/get",         "completion/complete",
    "logging/setLevel", "subscriptions/listen"};

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

// The client request a server → client request (a srv.client/<method> syscall) belongs to: the
// stateless client's call whose answer carries it as input_required (decision 034).
thread_local const std::string* tl_related_request = nullptr;

// Multi round-trip requests (decision 034).
constexpr int kMaxInputRounds = 8;                  // a stateless server's input_required rounds
constexpr int64_t kClientInputTimeoutMs = 120'000;  // a client's answer to one input request
constexpr size_t kMaxParkedExchanges = 16;          // stateless calls awaiting the client's retry
constexpr size_t kMaxListenResources = 64;  // resourceSubscriptions of one subscriptions/listen

constexpr std::string_view kOpenSecretTool = "custos.open_secret";

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
  // The gateway's subscriptions/listen stream to a stateless server (decision 042). open_mu
  // serialises opening it; the rest is guarded by the session's Impl::mu.
  struct Listen {
    std::mutex open_mu;
    bool started = false;           // the server started once: a later start is a restart
    bool scheduled = false;         // an open is queued (or waits out its back-off)
    bool opening = false;           // an open is running
    bool again = false;             // the stream ended while it was opening: open it again
    Json honored = Json::object();  // what the open stream's acknowledgement honored
    int64_t opened_ms = 0;
    int64_t backoff_ms = 100;
    std::set<std::string> uris;  // the server's URIs a client subscribed to
  } listen;
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
  // Client requests cancelled before their server request was written (the call was still being
  // decided, or was being sent): the effect then ends at once, or cancels right after sending.
  std::set<std::string> cancel_pending;  // guarded by inflight_mu
  // Sends a request to the client and waits for its answer (set by the Gateway). `related` is
  // the client request it belongs to, if known.
  std::function<Result<Message>(const std::string& method, const Json& params,
                                const std::string& related)>
      to_client;
  // One embedded input request of a stateless server's input_required, as the syscall
  // srv.client/<method> on its own thread; the client's answer, or *err (set by the Gateway).
  std::function<Result<Json>(Backend& b, const InputRequest& r, const std::string& related,
                             Message* err)>
      ask_client;

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

  // A secret handle in a call's arguments goes to this server: the policy names it "mcp:<srv>"
  // in the secret's destinations. Only tool calls carry the client's values; the other methods,
  // server log relays and requests to the client take none.
  std::string SecretDestination(const std::string& target) const override {
    const std::string rest = target.substr(b_->config.name.size() + 1);
    return rest.find('/') == std::string::npos ? "mcp:" + b_->config.name : "";
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
    const bool listen = method == "subscriptions/listen";  // the gateway's own stream
    const std::string client_key =
        tl_client_request != nullptr && !listen ? *tl_client_request : "";
    const std::string related = tl_related_request != nullptr ? *tl_related_request : "";
    std::function<void(int64_t)> on_sent;
    if (!client_key.empty() && !to_client) {
      on_sent = [this, &client_key](int64_t id) {
        bool cancel = false;
        {
          std::lock_guard lock(shared_->inflight_mu);
          shared_->inflight[client_key] = {b_, id};
          cancel = shared_->cancel_pending.erase(client_key) != 0;
        }
        if (cancel)  // the client's cancellation came while the request was being written
          b_->server->Cancel(id, "cancelled by the client");
      };
      // In flight from now on (before the server can ask anything about it); the server's id
      // follows once the request is written.
      std::lock_guard lock(shared_->inflight_mu);
      if (shared_->cancel_pending.erase(client_key) != 0) {
        return Status(Reason::kMcpCancelled,
                      "the client cancelled the request before it reached the server");
      }
      shared_->inflight[client_key] = {b_, -1};
    }
    Result<Message> reply = to_client ? shared_->to_client(method, params, related)
                            : listen  ? b_->server->Listen(params)
                                      : b_->server->Call(method, params, on_sent);
    if (!to_client)
      reply = FulfilInputRequired(method, params, client_key, on_sent, std::move(reply));
    if (!client_key.empty() && !to_client) {
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

  // A stateless server's input_required (decision 034): each embedded request is a syscall
  // srv.client/<method> answered by the client (in its era), then the call is retried with the
  // inputResponses and the byte-exact requestState, until a complete result or kMaxInputRounds.
  // A refused or failed input request ends the call with that refusal or error.
  Result<Message> FulfilInputRequired(const std::string& method, const Json& params,
                                      const std::string& client_key,
                                      const std::function<void(int64_t)>& on_sent,
                                      Result<Message> reply) {
    for (int round = 0; reply.ok() && reply->type == Message::Type::kResponse &&
                        IsInputRequired(method, reply->result);
         ++round) {
      const Json id = reply->id;
      if (round >= kMaxInputRounds) {
        return Message::Error(id, kInternalError,
                              "server '" + b_->config.name + "' still required input for " +
                                  method + " after " + std::to_string(kMaxInputRounds) + " rounds");
      }
      Result<InputRequired> ir = ParseInputRequired(reply->result);
      if (!ir.ok()) {
        return Message::Error(
            id, kInternalError,
            "server '" + b_->config.name + "': " + std::string(ir.status().message()),
            StatusData(ir.status()));
      }
      // The requests of one round run in parallel, as the SDK's own client does.
      std::vector<Result<Json>> answers(ir->requests.size(),
                                        Status(Reason::kInternal, "not answered"));
      std::vector<Message> errors(ir->requests.size());
      std::vector<std::thread> askers;
      for (size_t i = 0; i < ir->requests.size(); ++i) {
        askers.emplace_back([&, i] {
          answers[i] = shared_->ask_client(*b_, ir->requests[i], client_key, &errors[i]);
        });
      }
      for (std::thread& t : askers)
        t.join();
      Json responses = Json::object();
      for (size_t i = 0; i < answers.size(); ++i) {
        if (!answers[i].ok()) {
          errors[i].id = id;
          return errors[i];
        }
        responses[ir->requests[i].key] = std::move(answers[i]).value();
      }
      Json retry = params;
      if (!responses.empty())
        retry["inputResponses"] = std::move(responses);
      if (ir->request_state)
        retry["requestState"] = *ir->request_state;
      reply = b_->server->Call(method, retry, on_sent);
    }
    return reply;
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
  std::string SecretDestination(const std::string& target) const override {
    std::shared_ptr<kernel::ToolProvider> p = Pick();
    return p == nullptr ? "" : p->SecretDestination(target);
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
  std::function<void(const std::string&, const std::string&)> send_related;
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
  // Resource URIs (as the client names them) that listen streams subscribed to, and how many.
  std::map<std::string, int> resource_listeners;
  Json client_capabilities = Json::object();
  int64_t next_client_id = 1;
  std::map<std::string, std::shared_ptr<std::optional<Message>>> client_pending;  // by id
  bool client_gone = false;  // the front closed: nobody will answer client_pending
  bool client_initialized = false;
  std::map<std::string, std::string> taint;  // label-set key → handle id
  std::set<std::string> cancelled;           // client request ids (dumped)
  std::multiset<std::string> active;         // client requests being handled (dumped ids)
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
      std::lock_guard pending(shared->inflight_mu);
      shared->cancel_pending.erase(id.dump());  // if it never reached the server
      stateless_requests.erase(id.dump());      // no response will be sent
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

  // A request or notification that belongs to client request `related` (if known).
  void SendRelated(Message m, const std::string& related) {
    if (related.empty() || !send_related) {
      Send(std::move(m));
      return;
    }
    const std::string line = m.Serialize();
    std::lock_guard lock(send_mu);
    send_related(line, related);
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
  // the kernel's refusal as a JSON-RPC error message for `id`. `shown`: the client sees the
  // answer, so its labels join the session's taint (not for the gateway's own listen stream).
  Result<Json> Mediated(const std::string& target, const Json& arguments, const Json& id,
                        Message* error_out, const std::string& related = "", bool shown = true) {
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
    tl_related_request = related.empty() ? nullptr : &related;
    tl_session = shared.get();
    kernel::SyscallResult r = shared->kernel->Execute(call);
    tl_session = nullptr;
    tl_related_request = nullptr;
    tl_client_request = nullptr;
    // The server's log messages during the call were relayed (on its reader thread) before its
    // answer was read: summarise them with the call, before the client sees the answer.
    FlushAllLogs();
    if (r.handle && shown)
      AddTaint(*r.handle);
    if (!r.decision.allowed()) {
      *error_out = RefusalError(id, r);
      return Status(r.decision.reason, r.decision.explanation);
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

  // A kernel refusal as the JSON-RPC error the client gets (docs/mcp.md "Errors to the client").
  static Message RefusalError(const Json& id, const kernel::SyscallResult& r) {
    const Decision& d = r.decision;
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
    return Message::Error(id, code, std::string(ReasonName(d.reason)) + ": " + d.explanation,
                          std::move(data));
  }

  // The gateway's own tool (gateway.toml [gateway] secrets): a handle to one of those secrets,
  // for the client to put in a server tool's arguments as {{h_...}}. It is a recorded secret.open
  // bound to "mcp:<server>" (the policy's agents and destinations decide); the value never
  // reaches the client, and the kernel substitutes it only in a call to a server the secret's
  // destinations list. The handle is not the session's taint: the client saw no content.
  Json OpenSecretTool() const {
    return {
        {"name", std::string(kOpenSecretTool)},
        {"title", "Open a secret handle"},
        {"description",
         "Returns a handle such as {{h_...}} to one of the user's secrets. Put the handle, "
         "never a secret value, in an argument of a tool of `server`; Custos substitutes "
         "the secret only in calls to the servers the user's policy allows."},
        {"inputSchema",
         {{"type", "object"},
          {"properties",
           {{"name", {{"type", "string"}, {"enum", shared->config.secrets}}},
            {"server", {{"type", "string"}, {"description", "the MCP server the handle is for"}}}}},
          {"required", Json::array({"name", "server"})}}},
        {"annotations", {{"readOnlyHint", true}, {"openWorldHint", false}}}};
  }

  void OpenSecret(const Message& req, const Json& args) {
    const std::string name = args.is_object() ? args.value("name", "") : "";
    const std::string server = args.is_object() ? args.value("server", "") : "";
    const auto& allowed = shared->config.secrets;
    if (std::find(allowed.begin(), allowed.end(), name) == allowed.end() ||
        shared->Find(server) == nullptr) {
      Finish(req.id, Message::Error(req.id, kInvalidParams,
                                    "custos.open_secret needs `name`, one of gateway.toml's "
                                    "[gateway] secrets, and `server`, a configured server",
                                    StatusData(Status(Reason::kInvalidArgument, ""))));
      return;
    }
    kernel::Syscall call;
    call.agent = shared->config.agent;
    call.run = run;
    call.kind = SyscallKind::kSecretOpen;
    call.target = name;
    call.args = {{"destination", "mcp:" + server}};
    shared->wallet->Attach(call);
    kernel::SyscallResult r = shared->kernel->Execute(call);
    if (!r.decision.allowed() || !r.handle) {
      Finish(req.id, RefusalError(req.id, r));
      return;
    }
    const std::string ref = "{{" + r.handle->id + "}}";
    Json result = {{"content", {{{"type", "text"}, {"text", ref}}}},
                   {"structuredContent", {{"handle", ref}, {"server", server}}}};
    DowngradeForClient(ClientVersion(), "tools/call", &result);
    Finish(req.id, Message::Response(req.id, std::move(result)));
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
    if (next.is_null() && method == "tools/list" && !shared->config.secrets.empty())
      items.push_back(OpenSecretTool());  // on the last page
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
      Finish(req.id, Message::Error(req.id, code, "no downstream server offers " + what,
                                    StatusData(Status(Reason::kMcpUnknownTool, ""))));
      return;
    }
    const bool is_tool = method == "tools/call";
    Message err;
    Result<Json> r =
        Mediated(b->config.name + "." + (is_tool ? what : method), params, req.id, &err);
    if (TakeCancelled(req.id)) {
      DropExchange(req.id);
      return;  // the client cancelled: no response (MCP cancellation)
    }
    if (!r.ok()) {
      Finish(req.id, err);
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
    Finish(req.id, Message::Response(req.id, std::move(result)));
  }

  // ---- Multi round-trip requests with a stateless client (decision 034) ----
  // A stateless client's tools/call, prompts/get or resources/read is an Exchange while it runs.
  // A server → client request made during it (a srv.client/<method> syscall whose effect is
  // AskStatelessClient) answers the client's open request with input_required; the client's
  // retry (inputResponses + requestState) delivers the answers and becomes the open request; the
  // call's final answer goes to whichever request is open then, or waits for the retry.
  struct InputWait {
    std::string method;
    Json params;
    std::optional<Json> answer;
  };
  struct Exchange {
    std::string id;            // 128 random bits, sealed into requestState
    std::string original_key;  // the first request's id (dumped): the mediated call's key
    std::string method;
    std::string digest;  // SHA-256 of the call's params without _meta and the retry fields
    Json open_id;        // the client request awaiting an answer; null: none (parked)
    bool parked = false;
    bool gone = false;  // expired or ended: its answer, if it comes, is dropped
    int64_t expires_ms = 0;
    int64_t next_key = 1;
    std::map<std::string, std::shared_ptr<InputWait>> inputs;  // unanswered, by input key
    std::optional<Message> final;                              // the answer, when none was open
  };
  std::map<std::string, std::shared_ptr<Exchange>> exchanges;     // by original_key; guarded by mu
  std::map<std::string, std::string> exchange_ids;                // id → original_key
  const crypto::AeadKey state_key = crypto::AeadKey::Generate();  // this session's, never stored

  static bool IsMultiRoundTrip(const std::string& method) {
    return method == "tools/call" || method == "prompts/get" || method == "resources/read";
  }

  static std::string ParamsDigest(const Json& params) {
    Json p = params.is_object() ? params : Json::object();
    for (const char* k : {"_meta", "inputResponses", "requestState"})
      p.erase(k);
    return crypto::Sha256(p.dump(-1, ' ', false, Json::error_handler_t::replace)).Hex();
  }

  static int64_t WallMs() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
  }

  // What a requestState is bound to: this session (run), its agent, the method and the params.
  std::string StateAd(const Exchange& e) const {
    return "custos.mcp.requestState.v1\n" + run + "\n" + shared->config.agent + "\n" + e.method +
           "\n" + e.digest;
  }

  std::string SealState(const Exchange& e) const {
    const Json payload = {{"x", e.id}, {"exp", WallMs() + kClientInputTimeoutMs}};
    return Base64Encode(AsBytes(state_key.Seal(payload.dump(), StateAd(e))));
  }

  // The exchange a retry's requestState names. REQUIRES: mu held.
  Result<std::shared_ptr<Exchange>> OpenState(const Json& state, const std::string& method,
                                              const std::string& digest) {
    const Status invalid(Reason::kMcpRequestStateInvalid,
                         "Invalid or expired requestState: it was not issued by this session for "
                         "this request, or it has expired");
    if (!state.is_string() || state.get_ref<const std::string&>().size() > 4096)
      return invalid;
    Result<std::vector<uint8_t>> raw = Base64Decode(state.get<std::string>());
    if (!raw.ok())
      return invalid;
    // The exchange id is inside the sealed payload, so the additional data is tried against
    // the method and params the retry names: a state moved to other params does not open.
    Exchange probe;
    probe.method = method;
    probe.digest = digest;
    Result<std::string> opened =
        state_key.Open(std::string(raw->begin(), raw->end()), StateAd(probe));
    if (!opened.ok())
      return invalid;
    Result<Json> payload = ParseUntrustedJson(*opened);
    if (!payload.ok() || !payload->is_object() || !payload->value("x", Json()).is_string() ||
        !payload->value("exp", Json()).is_number_integer() ||
        payload->value("exp", int64_t{0}) < WallMs()) {
      return invalid;
    }
    auto id = exchange_ids.find(payload->value("x", ""));
    if (id == exchange_ids.end())
      return invalid;
    auto e = exchanges.find(id->second);
    if (e == exchanges.end() || e->second->gone)
      return invalid;
    return e->second;
  }

  // Ends parked exchanges past their expiry. REQUIRES: mu held.
  void SweepExchanges() {
    const int64_t now = NowMonoMs();
    for (auto it = exchanges.begin(); it != exchanges.end();) {
      Exchange& e = *it->second;
      if (e.parked && e.open_id.is_null() && !e.gone && now > e.expires_ms) {
        e.gone = true;
        e.inputs.clear();
        idle_cv.notify_all();
      }
      if (e.gone && e.final.has_value()) {  // ended and its call is over
        exchange_ids.erase(e.id);
        it = exchanges.erase(it);
      } else {
        ++it;
      }
    }
  }

  static int64_t NowMonoMs() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::steady_clock::now().time_since_epoch())
        .count();
  }

  void RemoveExchange(const std::shared_ptr<Exchange>& e) {  // REQUIRES: mu held
    e->gone = true;
    exchange_ids.erase(e->id);
    exchanges.erase(e->original_key);
    idle_cv.notify_all();
  }

  void DropExchange(const Json& id) {
    std::lock_guard lock(mu);
    auto it = exchanges.find(id.dump());
    if (it != exchanges.end())
      RemoveExchange(it->second);
  }

  // The input_required answer for the exchange's open request, if it has one and input is
  // wanted; the exchange is then parked until the client retries. REQUIRES: mu held.
  std::optional<Message> Offer(Exchange& e) {
    if (e.open_id.is_null() || e.gone)
      return std::nullopt;
    std::vector<InputRequest> wanted;
    for (const auto& [key, w] : e.inputs) {
      if (!w->answer)
        wanted.push_back({key, w->method, w->params});
    }
    if (wanted.empty())
      return std::nullopt;
    Message m = Message::Response(e.open_id, MakeInputRequired(wanted, SealState(e)));
    e.open_id = Json();
    e.parked = true;
    e.expires_ms = NowMonoMs() + kClientInputTimeoutMs;
    return m;
  }

  // The answer to a client request: for an exchange, to its open request, or kept for the retry.
  void Finish(const Json& id, Message m) {
    std::optional<Message> out;
    {
      std::lock_guard lock(mu);
      auto it = exchanges.find(id.dump());
      if (it == exchanges.end()) {
        out = std::move(m);
      } else {
        std::shared_ptr<Exchange> e = it->second;
        if (e->gone) {
          RemoveExchange(e);  // expired while parked: nobody asks for this answer any more
        } else if (!e->open_id.is_null()) {
          m.id = e->open_id;
          out = std::move(m);
          RemoveExchange(e);
        } else {
          e->final = std::move(m);  // sent when the client retries
        }
      }
    }
    if (out)
      Send(std::move(*out));
  }

  // The effect of a srv.client/<method> syscall toward a stateless client: the input request
  // rides the answer to the client's call (`related`) as input_required; waits for the retry
  // that answers it.
  Result<Message> AskStatelessClient(const std::string& method, const Json& params,
                                     const std::string& related) {
    const std::string family = kClientMethods.at(method);
    std::unique_lock lock(mu);
    SweepExchanges();
    if (!client_capabilities.contains(family)) {
      return Message::Error(nullptr, kMethodNotFound, "the client does not offer '" + family + "'");
    }
    auto it = related.empty() ? exchanges.end() : exchanges.find(related);
    if (it == exchanges.end() || it->second->gone) {
      return Message::Error(
          nullptr, kMethodNotFound,
          "the client speaks " + std::string(kStatelessVersion) +
              " and this request belongs to none of its tools/call, prompts/get or "
              "resources/read in flight (it needs exactly one in flight to this server)");
    }
    std::shared_ptr<Exchange> e = it->second;
    if (!e->parked) {
      size_t parked = 0;
      for (const auto& [k, x] : exchanges)
        parked += x->parked && !x->gone ? 1 : 0;
      if (parked >= kMaxParkedExchanges) {
        return Message::Error(nullptr, kInternalError,
                              "too many requests await the client's input (" +
                                  std::to_string(kMaxParkedExchanges) + ")");
      }
    }
    auto w = std::make_shared<InputWait>();
    w->method = method;
    w->params = params.is_object() ? params : Json::object();
    const std::string key = "custos-" + std::to_string(e->next_key++);
    e->inputs[key] = w;
    if (std::optional<Message> m = Offer(*e)) {
      lock.unlock();
      Send(std::move(*m));
      lock.lock();
    }
    idle_cv.wait_for(lock, std::chrono::milliseconds(kClientInputTimeoutMs),
                     [&] { return w->answer.has_value() || client_gone || e->gone; });
    e->inputs.erase(key);
    if (!w->answer)
      return Status(Reason::kEffectTimeout, "the client did not answer " + method);
    return Message::Response(nullptr, std::move(*w->answer));
  }

  // A stateless client's retry: its inputResponses go to the waiting server requests, and it
  // becomes the request the call's answer (or the next input_required) goes to.
  void Retry(const Message& msg) {
    std::optional<Message> out;
    {
      std::lock_guard lock(mu);
      SweepExchanges();
      Result<std::shared_ptr<Exchange>> found =
          OpenState(msg.params.value("requestState", Json()), msg.method, ParamsDigest(msg.params));
      if (found.ok() && !(*found)->open_id.is_null()) {
        found = Status(Reason::kMcpRequestStateInvalid,
                       "Invalid requestState: another request already continues this call");
      }
      if (!found.ok()) {
        stateless_requests.erase(msg.id.dump());
        out = Message::Error(msg.id, kInvalidParams, std::string(found.status().message()),
                             StatusData(found.status()));
      } else {
        std::shared_ptr<Exchange> e = *found;
        const Json responses = msg.params.value("inputResponses", Json::object());
        for (auto& [key, w] : e->inputs) {
          if (responses.is_object() && responses.contains(key) && responses[key].is_object())
            w->answer = responses[key];
        }
        idle_cv.notify_all();
        e->open_id = msg.id;
        if (e->final) {
          Message m = std::move(*e->final);
          m.id = msg.id;
          out = std::move(m);
          RemoveExchange(e);
        } else {
          out = Offer(*e);  // input still wanted: asked again
        }
      }
    }
    if (out)
      Send(std::move(*out));
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
    } else if (m == "tools/call" && !shared->config.secrets.empty() &&
               p.value("name", Json()) == kOpenSecretTool) {
      OpenSecret(req, p.value("arguments", Json::object()));
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
      if (m != "resources/read" && b != nullptr && b->server != nullptr && b->server->stateless()) {
        // A stateless server has no resources/subscribe: the gateway's listen stream to it
        // asks for the URI (a mediated srv.subscriptions/listen naming it).
        const bool subscribe = m == "resources/subscribe";
        if (ListenForUri(*b, uri, subscribe) || !subscribe) {
          Send(Message::Response(req.id, Json::object()));
        } else {
          Send(Message::Error(req.id, kMethodNotFound,
                              "server '" + b->config.name + "' did not take the subscription"));
        }
        return;
      }
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
    Json caps_for_servers;
    {
      std::lock_guard lock(mu);
      client_version = v;
      client_capabilities = req.params.is_object() && req.params.contains("capabilities") &&
                                    req.params["capabilities"].is_object()
                                ? req.params["capabilities"]
                                : Json::object();
    }
    {
      std::lock_guard lock(mu);
      caps_for_servers = client_capabilities;
    }
    OfferCapabilities(caps_for_servers);
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
        std::string key = n.params["requestId"].dump();
        std::optional<Json> released;  // a listen stream's resource subscriptions
        {
          std::lock_guard lock(mu);
          if (auto l = listens.find(key); l != listens.end()) {
            released = l->second.second.value("resourceSubscriptions", Json::array());
            listens.erase(l);
            stateless_log_levels.erase(key);
          }
        }
        if (released) {
          // A subscriptions/listen stream ends: no response; its resources are released.
          for (const Json& u : *released)
            UnsubscribeResource(u.get<std::string>());
          return;
        }
        {
          std::lock_guard lock(mu);
          // A retry of a multi round-trip call cancels the call it continues.
          for (const auto& [original, e] : exchanges) {
            if (!e->open_id.is_null() && e->open_id.dump() == key && original != key) {
              stateless_requests.erase(key);
              key = original;
              break;
            }
          }
        }
        {
          std::lock_guard lock(mu);
          if (active.count(key) == 0)
            return;  // answered already, or never asked: nothing to cancel
          if (cancelled.size() < 4096)
            cancelled.insert(key);
        }
        // Tell the server working on it, and end the wait (the server is not hung).
        std::shared_lock life(shared->life_mu);
        std::pair<Backend*, int64_t> target{nullptr, 0};
        {
          std::lock_guard lock(shared->inflight_mu);
          auto it = shared->inflight.find(key);
          if (it != shared->inflight.end() && it->second.second >= 0) {
            target = it->second;
          } else if (shared->cancel_pending.size() < 4096) {
            shared->cancel_pending.insert(key);  // not written yet: the effect cancels it
          }
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

  void OnServerNotification(Backend& b, const Message& n, int64_t call) {
    bool stateless;
    {
      std::lock_guard lock(mu);
      if (client_version.empty())
        return;
      stateless = client_version == kStatelessVersion;
    }
    const std::string& m = n.method;
    if (m == kLogMethod) {
      // A log message on a call's stream belongs to that call; otherwise nothing says.
      RelayLog(b, n, call != 0 ? CallOf(b, call) : "");
      return;
    }
    if (stateless && m != "notifications/progress") {
      // The stateless era delivers change notifications only on subscriptions/listen streams.
      const char* bit = m == "notifications/tools/list_changed"       ? "toolsListChanged"
                        : m == "notifications/prompts/list_changed"   ? "promptsListChanged"
                        : m == "notifications/resources/list_changed" ? "resourcesListChanged"
                                                                      : nullptr;
      if (m == "notifications/resources/updated" && n.params.is_object() &&
          n.params.contains("uri") && n.params["uri"].is_string()) {
        // To the listen streams that subscribed to this resource.
        const std::string uri = shared->ClientUri(b, n.params["uri"].get<std::string>());
        std::vector<Json> ids;
        {
          std::lock_guard lock(mu);
          for (const auto& [key, sub] : listens) {
            const Json subs = sub.second.value("resourceSubscriptions", Json::array());
            if (std::find(subs.begin(), subs.end(), Json(uri)) != subs.end())
              ids.push_back(sub.first);
          }
        }
        for (const Json& id : ids) {
          Json p = n.params;
          p["uri"] = uri;
          p["_meta"] = {{std::string(kMetaSubscriptionId), id}};
          Send(Message::Notification(m, std::move(p)));
        }
        return;
      }
      if (bit == nullptr)
        return;
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
          Send(Message::Notification(m, {{"_meta", {{std::string(kMetaSubscriptionId), id}}}}));
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
  // `related`: the client request the message belongs to, if known.
  void RelayLog(Backend& b, const Message& n, const std::string& related) {
    std::string min_level;
    bool requested = true;
    {
      std::lock_guard lock(mu);
      if (client_version.empty())
        return;
      if (client_version == kStatelessVersion && !related.empty()) {
        // The era sends logs only for a request that asked (its _meta logLevel): this one.
        auto it = stateless_log_levels.find(related);
        requested = it != stateless_log_levels.end();
        if (requested)
          min_level = it->second;
      } else if (client_version == kStatelessVersion) {
        // Not known which request it belongs to: the lowest level asked by a request still in
        // flight applies.
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
    SendRelated(std::move(note), related);
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

  // The client request (id dumped) a server's message belongs to: the call whose stream carried
  // it (`call`, the server-bound request's id), else the one call in flight to this server if
  // there is exactly one; "" otherwise.
  std::string CallOf(const Backend& b, int64_t call) {
    std::lock_guard lock(shared->inflight_mu);
    std::string only;
    int n = 0;
    for (const auto& [key, target] : shared->inflight) {
      if (target.first != &b)
        continue;
      if (call != 0 && target.second == call)
        return key;
      if (n++ == 0)
        only = key;
    }
    return call == 0 && n == 1 ? only : "";
  }

  void OnServerRequest(Backend& b, const Message& r, int64_t call) {
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
    // The client request it belongs to (a stateless client gets it as input_required on that
    // call): the call whose stream carried it, else the one call in flight to this server.
    const std::string related = CallOf(b, call);
    Backend* bp = &b;
    Async([this, bp, r, related] {
      Message err;
      Result<Json> res =
          Mediated(bp->config.name + ".client/" + r.method,
                   r.params.is_object() ? r.params : Json::object(), r.id, &err, related);
      std::shared_lock life(shared->life_mu);
      if (shared->closed || bp->server == nullptr)
        return;
      bp->server->Respond(res.ok() ? Message::Response(r.id, *res) : err).IgnoreError();
    });
  }

  // The gateway's own request to the client (the effect of a server → client syscall).
  Result<Message> ToClient(const std::string& method, const Json& params,
                           const std::string& related) {
    if (ClientStateless())
      return AskStatelessClient(method, params, related);
    const std::string family = kClientMethods.at(method);
    auto slot = std::make_shared<std::optional<Message>>();
    Json id;
    {
      std::lock_guard lock(mu);
      if (!client_capabilities.contains(family)) {
        return Message::Error(nullptr, kMethodNotFound,
                              "the client does not offer '" + family + "'");
      }
      id = "custos-" + std::to_string(next_client_id++);
      client_pending[id.dump()] = slot;
    }
    SendRelated(Message::Request(id, method, params), related);
    std::unique_lock lock(mu);
    const bool answered = idle_cv.wait_for(lock, std::chrono::milliseconds(kClientInputTimeoutMs),
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
    const std::string key = req.id.dump();
    {
      std::lock_guard lock(mu);
      if (!token.empty())
        progress_tokens.insert(token);
      active.insert(key);
    }
    Async([this, req = std::move(req), token, key] {
      Handle(req);
      std::lock_guard l(mu);
      if (!token.empty())
        progress_tokens.erase(token);
      active.erase(active.find(key));
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
    bool caps_changed = false;
    {
      std::lock_guard lock(mu);
      if (log_level.is_string() && msg.method != "server/discover")
        stateless_log_levels[msg.id.dump()] = log_level.get<std::string>();
      if (msg.method != "server/discover") {
        client_version = std::string(kStatelessVersion);  // the era of this connection
        client_initialized = true;
        caps_changed = client_capabilities != env->client_capabilities;
        client_capabilities = env->client_capabilities;
      }
      stateless_requests[msg.id.dump()] = msg.method;
    }
    if (caps_changed)
      OfferCapabilities(env->client_capabilities);
    if (msg.method == "subscriptions/listen") {
      Listen(msg);
      return;
    }
    if (msg.method == "server/discover") {
      // listChanged and resource subscriptions ride subscriptions/listen; logging: server log
      // messages are relayed for requests whose _meta asks (the era deprecates logging but keeps
      // the per-request opt-in).
      const Json caps = {{"tools", {{"listChanged", true}}},
                         {"resources", {{"listChanged", true}, {"subscribe", true}}},
                         {"prompts", {{"listChanged", true}}},
                         {"completions", Json::object()},
                         {"logging", Json::object()}};
      Send(Message::Response(msg.id, {{"supportedVersions", Json::array({kStatelessVersion})},
                                      {"capabilities", caps}}));
      return;
    }
    msg.params = StripEnvelope(msg.params);
    if (IsMultiRoundTrip(msg.method) && msg.params.is_object()) {
      if (msg.params.contains("requestState") || msg.params.contains("inputResponses")) {
        Retry(msg);  // continues a call that is still running: no new syscall
        return;
      }
      auto e = std::make_shared<Exchange>();
      e->id = crypto::RandomId("x_");
      e->original_key = msg.id.dump();
      e->method = msg.method;
      e->digest = ParamsDigest(msg.params);
      e->open_id = msg.id;
      bool in_use = false;
      {
        std::lock_guard lock(mu);
        in_use = exchanges.count(e->original_key) != 0;
        if (in_use) {
          stateless_requests.erase(e->original_key);
        } else {
          exchange_ids[e->id] = e->original_key;
          exchanges[e->original_key] = std::move(e);
        }
      }
      if (in_use) {
        // The id still names a call that awaits input (or its retry): answers must not mix.
        Send(Message::Error(msg.id, kInvalidRequest,
                            "request id " + msg.id.dump().substr(0, 64) +
                                " belongs to a call that is still in progress",
                            StatusData(Status(Reason::kMcpProtocolError, ""))));
        return;
      }
    }
    Dispatch(std::move(msg));
  }

  // Tells every server which client capabilities it may rely on: those its config offers and
  // the client declared (a stateless server sees them in each request's envelope).
  void OfferCapabilities(const Json& client_caps) {
    std::shared_lock life(shared->life_mu);
    if (shared->closed)
      return;
    for (auto& b : shared->backends) {
      Json offered = Json::object();
      for (const std::string& c : b->config.client_capabilities) {
        if (client_caps.is_object() && client_caps.contains(c))
          offered[c] = client_caps[c].is_object() ? client_caps[c] : Json::object();
      }
      if (b->server != nullptr)
        b->server->OfferClientCapabilities(offered);
    }
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
    const Json uris = filter.value("resourceSubscriptions", Json());
    if (uris.is_array() && !uris.empty()) {
      if (uris.size() > kMaxListenResources) {
        Send(Message::Error(msg.id, kInvalidParams,
                            "resourceSubscriptions lists more than " +
                                std::to_string(kMaxListenResources) + " URIs"));
        return;
      }
      // Each URI is subscribed at its server (a mediated srv.resources/subscribe), not on the
      // reader thread; the acknowledgement lists the ones that took.
      {
        std::lock_guard lock(mu);
        stateless_requests.erase(msg.id.dump());  // answered by notifications, not a result
      }
      Async([this, msg, honored, uris]() mutable {
        Json taken = Json::array();
        for (const Json& u : uris) {
          if (u.is_string() && SubscribeResource(u.get<std::string>(), msg.id))
            taken.push_back(u);
        }
        if (!taken.empty())
          honored["resourceSubscriptions"] = std::move(taken);
        OpenListen(msg, honored);
      });
      return;
    }
    OpenListen(msg, honored);
  }

  void OpenListen(const Message& msg, const Json& honored) {
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
      for (const Json& u : honored.value("resourceSubscriptions", Json::array()))
        UnsubscribeResource(u.get<std::string>());
      Send(Message::Error(msg.id, kInternalError, "Subscription limit reached"));
      return;
    }
    Send(Message::Notification(
        "notifications/subscriptions/acknowledged",
        {{"notifications", honored}, {"_meta", {{std::string(kMetaSubscriptionId), msg.id}}}}));
  }

  // A listen stream's resource subscription: the first listener of a URI subscribes at its
  // server (a 2025-era server that offers subscribe: srv.resources/subscribe; a stateless one:
  // the gateway's listen stream to it is reopened with the URI). False when it did not take.
  bool SubscribeResource(const std::string& client_uri, const Json& id) {
    auto [b, uri] = SplitUri(client_uri);
    if (b == nullptr || b->server == nullptr)
      return false;
    const Json caps = b->server->capabilities();
    if (!caps.is_object() || !caps.value("resources", Json::object()).is_object() ||
        caps["resources"].value("subscribe", false) != true) {
      return false;
    }
    {
      std::lock_guard lock(mu);
      if (auto it = resource_listeners.find(client_uri); it != resource_listeners.end()) {
        ++it->second;
        return true;
      }
    }
    if (b->server->stateless()) {
      if (!ListenForUri(*b, uri, true))
        return false;
    } else {
      Message err;
      if (!Mediated(b->config.name + ".resources/subscribe", {{"uri", uri}}, id, &err).ok())
        return false;
    }
    std::lock_guard lock(mu);
    ++resource_listeners[client_uri];
    return true;
  }

  void UnsubscribeResource(const std::string& client_uri) {
    {
      std::lock_guard lock(mu);
      auto it = resource_listeners.find(client_uri);
      if (it == resource_listeners.end() || --it->second > 0)
        return;
      resource_listeners.erase(it);
    }
    Async([this, client_uri] {
      auto [b, uri] = SplitUri(client_uri);
      Message err;
      if (b != nullptr && b->server != nullptr && b->server->stateless())
        ListenForUri(*b, uri, false);
      else if (b != nullptr)
        (void)Mediated(b->config.name + ".resources/unsubscribe", {{"uri", uri}},
                       Json("custos-unsubscribe"), &err);
    });
  }

  // ---- The gateway's listen stream to each stateless server (decision 042) ----
  // Opened when the server starts (and after every restart), reopened with back-off when it
  // ends, reopened with the new filter when a client (un)subscribes one of its resources; each
  // open is the mediated syscall srv.subscriptions/listen. Its notifications arrive through
  // on_notification like a 2025 server's unsolicited ones.

  void OnServerEvent(Backend& b, const std::string& event) {
    if (event == "mcp.server.started") {
      bool restart = false;
      bool open = false;
      {
        std::lock_guard lock(mu);
        if (client_gone)
          return;
        restart = b.listen.started;
        b.listen.started = true;
        // An open running now reaches the new process anyway (its Listen() started it).
        open = b.server->stateless() && !b.listen.opening;
      }
      if (open)
        ScheduleServerListen(b, false);
      else if (restart && !b.server->stateless())
        ResendLogLevel(b);
    } else if (event == "mcp.server.listen_ended") {
      bool reopen = false;
      {
        std::lock_guard lock(mu);
        if (client_gone)
          return;
        if (b.listen.opening) {
          b.listen.again = true;
        } else {
          if (SteadyMs() - b.listen.opened_ms >= 10'000)
            b.listen.backoff_ms = 100;  // it was healthy
          reopen = !b.listen.honored.empty();
        }
      }
      if (reopen)
        ScheduleServerListen(b, true);
    }
  }

  // A restarted 2025 server is told the level the client set (the same mediated syscall).
  void ResendLogLevel(Backend& b) {
    std::string level;
    {
      std::lock_guard lock(mu);
      level = client_log_level;
    }
    if (level.empty() || !ServerSupports(b, "logging/setLevel"))
      return;
    Backend* bp = &b;
    Async([this, bp, level] {
      Message err;
      (void)Mediated(bp->config.name + ".logging/setLevel", {{"level", level}},
                     Json("custos-set-level"), &err);
    });
  }

  void ScheduleServerListen(Backend& b, bool backoff) {
    int64_t delay = 0;
    {
      std::lock_guard lock(mu);
      if (client_gone || b.listen.scheduled)
        return;
      b.listen.scheduled = true;
      if (backoff) {
        delay = b.listen.backoff_ms;
        b.listen.backoff_ms = std::min<int64_t>(b.listen.backoff_ms * 2, 10'000);
      }
    }
    Backend* bp = &b;
    Async([this, bp, delay] {
      {
        std::unique_lock lock(mu);
        idle_cv.wait_for(lock, std::chrono::milliseconds(delay), [&] { return client_gone; });
        bp->listen.scheduled = false;
        if (client_gone)
          return;
      }
      OpenServerListen(*bp);
    });
  }

  // What the gateway asks a stateless server to listen for: every change its capabilities
  // announce, and the resources clients subscribed to there.
  static Json ServerListenFilter(const Backend& b, const std::set<std::string>& uris) {
    const Json caps = b.server->capabilities();
    Json filter = Json::object();
    if (!caps.is_object())
      return filter;
    auto has = [&](const char* family, const char* flag) {
      return caps.contains(family) && caps[family].is_object() &&
             caps[family].value(flag, false) == true;
    };
    if (has("tools", "listChanged"))
      filter["toolsListChanged"] = true;
    if (has("prompts", "listChanged"))
      filter["promptsListChanged"] = true;
    if (has("resources", "listChanged"))
      filter["resourcesListChanged"] = true;
    if (has("resources", "subscribe") && !uris.empty())
      filter["resourceSubscriptions"] = uris;
    return filter;
  }

  // Opens the listen stream with the current filter (ending the previous one); what the server
  // acknowledged, {} if nothing was (or nothing is asked for).
  Json OpenServerListen(Backend& b) {
    std::lock_guard open(b.listen.open_mu);
    std::set<std::string> uris;
    {
      std::lock_guard lock(mu);
      if (client_gone)
        return Json::object();
      b.listen.opening = true;
      b.listen.again = false;
      uris = b.listen.uris;
    }
    Json honored = Json::object();
    bool retry = false;
    const Json filter = b.server->stateless() ? ServerListenFilter(b, uris) : Json::object();
    if (filter.empty()) {
      b.server->StopListening();
    } else {
      Message err;
      Result<Json> r =
          Mediated(b.config.name + ".subscriptions/listen", {{"notifications", filter}},
                   Json("custos-listen"), &err, "", /*shown=*/false);
      if (r.ok())
        honored = r->value("notifications", Json::object());
      // The server is down or did not answer: try again later; a refusal is final.
      retry = !r.ok() && err.error_code == kServerUnavailable;
    }
    {
      std::lock_guard lock(mu);
      b.listen.opening = false;
      b.listen.honored = honored.is_object() ? honored : Json::object();
      b.listen.opened_ms = SteadyMs();
      retry = retry || (b.listen.again && !b.listen.honored.empty());
    }
    if (retry)
      ScheduleServerListen(b, true);
    return honored;
  }

  // Adds (removes) one of a stateless server's URIs to the resources its listen stream asks
  // for, and reopens it; whether the server acknowledged the subscription.
  bool ListenForUri(Backend& b, const std::string& uri, bool add) {
    auto took_in = [&](const Json& honored) {
      const Json taken = honored.value("resourceSubscriptions", Json::array());
      return std::find(taken.begin(), taken.end(), Json(uri)) != taken.end();
    };
    {
      std::lock_guard lock(mu);
      if ((b.listen.uris.count(uri) != 0) == add)  // nothing changes
        return add && took_in(b.listen.honored);
      if (add)
        b.listen.uris.insert(uri);
      else
        b.listen.uris.erase(uri);
    }
    const bool took = took_in(OpenServerListen(b));
    if (add && !took) {
      std::lock_guard lock(mu);
      b.listen.uris.erase(uri);
    }
    return took;
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

std::optional<Json> Gateway::ToolInputSchema(std::string_view name) const {
  auto [b, tool] = impl_->SplitName(Json(std::string(name)));
  if (b == nullptr)
    return std::nullopt;
  std::shared_lock lock(b->tools_mu);
  auto it = b->tools.find(tool);
  if (it == b->tools.end() || !it->second.usable.ok())
    return std::nullopt;
  return it->second.descriptor.value("inputSchema", Json::object());
}

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
  impl->send_related = std::move(options.send_related);
  Impl* raw = impl.get();
  Shared* shared = impl->shared.get();
  shared->to_client = [raw](const std::string& m, const Json& p, const std::string& related) {
    return raw->ToClient(m, p, related);
  };
  shared->ask_client = [raw](Backend& b, const InputRequest& r, const std::string& related,
                             Message* err) -> Result<Json> {
    Result<Json> res = raw->Mediated(b.config.name + ".client/" + r.method, r.params,
                                     Json("custos-input-" + r.key), err, related);
    if (!res.ok() && err->type != Message::Type::kError)
      *err = Message::Error(nullptr, kInternalError, std::string(res.status().message()),
                            StatusData(res.status()));
    return res;
  };
  for (const ServerConfig& sc : options.config.servers) {
    auto b = std::make_unique<Backend>();
    b->config = sc;
    Backend* bp = b.get();
    Downstream::Callbacks cb;
    cb.on_notification = [raw, bp](const Message& m, int64_t call) {
      raw->OnServerNotification(*bp, m, call);
    };
    cb.on_request = [raw, bp](const Message& m, int64_t call) {
      raw->OnServerRequest(*bp, m, call);
    };
    cb.on_event = [raw, shared, bp](const std::string& e, const Json& d) {
      shared->Event(e, d);
      raw->OnServerEvent(*bp, e);
    };
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

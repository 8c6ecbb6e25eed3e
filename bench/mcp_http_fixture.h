#pragma once
// A fast MCP Streamable HTTP server and a keep-alive MCP client for the HTTP benchmarks of
// mcp_bench.cc. The server is custosd's own Beast transport (server::Server) with one mount at
// /mcp answering in-process: initialize (opens one session), tools/list (one read-only tool,
// `echo`), tools/call of `echo` (its arguments back as text), ping; notifications get 202, GET
// 405 (no server stream), DELETE 200. It holds no locks and does a few microseconds of JSON per
// call, so it is not what a benchmark measures. The client is the tests' RawConnection (one
// blocking keep-alive TCP connection, TCP_NODELAY).
//
// Confined: one McpHttpClient per thread. EchoServer is thread-safe.

#include <atomic>
#include <memory>
#include <string>

#include "custos/core/json.h"
#include "custos/server/metrics.h"
#include "custos/server/server.h"
#include "testing/http_client.h"

namespace custos::bench {

class EchoServer {
 public:
  // Starts on 127.0.0.1 (any port); null if the transport does not start.
  static std::unique_ptr<EchoServer> Start(int threads = 1, int workers = 4) {
    auto s = std::unique_ptr<EchoServer>(new EchoServer());
    server::ServerOptions so;
    so.listen = "127.0.0.1:0";
    so.threads = threads;
    so.workers = workers;
    so.limits.max_connections = 1024;
    server::Mount m;
    m.path = "/mcp";
    EchoServer* self = s.get();
    m.handler = [self](server::MountRequest req, std::shared_ptr<server::MountStream> out) {
      out->Respond(self->Answer(req));
    };
    so.mounts.push_back(std::move(m));
    Result<std::unique_ptr<server::Server>> srv =
        server::Server::Start(nullptr, &s->metrics_, std::move(so));
    if (!srv.ok())
      return nullptr;
    s->server_ = std::move(srv).value();
    return s;
  }
  ~EchoServer() {
    if (server_)
      server_->Shutdown();
  }
  uint16_t port() const { return server_->tcp_port(); }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port()) + "/mcp"; }
  int64_t calls() const { return calls_.load(); }

 private:
  EchoServer() = default;

  server::HttpResponse Answer(const server::MountRequest& req) {
    server::HttpResponse r;
    r.route = "/mcp";
    if (req.method == "DELETE")
      return r;
    if (req.method != "POST") {
      r.status = 405;
      r.headers.emplace_back("Allow", "POST, DELETE");
      return r;
    }
    Json m = Json::parse(req.body, nullptr, /*allow_exceptions=*/false);
    if (!m.is_object() || !m.contains("method") || !m["method"].is_string()) {
      r.status = m.is_object() ? 202 : 400;  // a response to a server request, or garbage
      return r;
    }
    if (!m.contains("id")) {
      r.status = 202;
      return r;
    }
    const std::string method = m["method"].get<std::string>();
    const Json& params = m.contains("params") ? m["params"] : Json::object();
    Json reply = {{"jsonrpc", "2.0"}, {"id", m["id"]}};
    if (method == "initialize") {
      std::string v = params.is_object() ? params.value("protocolVersion", "") : "";
      if (v != "2025-03-26" && v != "2025-06-18")
        v = "2025-11-25";
      reply["result"] = {{"protocolVersion", v},
                         {"capabilities", {{"tools", Json::object()}}},
                         {"serverInfo", {{"name", "bench-echo"}, {"version", "1"}}}};
      r.headers.emplace_back("Mcp-Session-Id", "echo-" + std::to_string(++sessions_));
    } else if (method == "tools/list") {
      reply["result"] = {{"tools",
                          {{{"name", "echo"},
                            {"description", "Returns its arguments."},
                            {"inputSchema", {{"type", "object"}}},
                            {"annotations", {{"readOnlyHint", true}}}}}}};
    } else if (method == "tools/call") {
      calls_.fetch_add(1, std::memory_order_relaxed);
      const Json args = params.is_object() ? params.value("arguments", Json::object()) : Json();
      reply["result"] = {{"content", {{{"type", "text"}, {"text", args.dump()}}}}};
    } else if (method == "ping") {
      reply["result"] = Json::object();
    } else {
      reply["error"] = {{"code", -32601}, {"message", "method not found"}};
    }
    r.body = reply.dump();
    return r;
  }

  server::Metrics metrics_;
  std::unique_ptr<server::Server> server_;
  std::atomic<int64_t> sessions_{0};
  std::atomic<int64_t> calls_{0};
};

// One MCP client session over one keep-alive connection (2025-11-25).
class McpHttpClient {
 public:
  // Connects and initializes; false if anything fails. `session` reuses an open session instead
  // (several connections of one client).
  bool Open(uint16_t port, const std::string& session = "") {
    conn_ = testing::RawConnection::Tcp(port);
    if (!conn_.ok())
      return false;
    if (!session.empty()) {
      session_ = session;
      return true;
    }
    const Json init = {{"jsonrpc", "2.0"},
                       {"id", 0},
                       {"method", "initialize"},
                       {"params",
                        {{"protocolVersion", "2025-11-25"},
                         {"capabilities", Json::object()},
                         {"clientInfo", {{"name", "bench"}, {"version", "1"}}}}}};
    testing::HttpReply r = Post(init.dump());
    auto sid = r.headers.find("mcp-session-id");
    if (r.status != 200 || sid == r.headers.end())
      return false;
    session_ = sid->second;
    r = Post(R"({"jsonrpc":"2.0","method":"notifications/initialized"})");
    return r.status == 202;
  }

  // tools/call of `tool` with {"i": id}; true if a JSON result (not an error) came back.
  bool Call(const std::string& tool, int64_t id) {
    const std::string body = R"({"jsonrpc":"2.0","id":)" + std::to_string(id) +
                             R"(,"method":"tools/call","params":{"name":")" + tool +
                             R"(","arguments":{"i":)" + std::to_string(id) + "}}}";
    const testing::HttpReply r = Post(body);
    return r.status == 200 && r.body.find("\"result\"") != std::string::npos;
  }

  testing::HttpReply Post(const std::string& body) {
    std::string headers = "Accept: application/json, text/event-stream\r\n";
    if (!session_.empty()) {
      headers += "Mcp-Session-Id: " + session_ + "\r\nMCP-Protocol-Version: 2025-11-25\r\n";
    }
    if (!conn_.Send(testing::RawConnection::Format("POST", "/mcp", body, headers)))
      return {};
    return conn_.Read();
  }

  const std::string& session() const { return session_; }

 private:
  testing::RawConnection conn_;
  std::string session_;
};

}  // namespace custos::bench

#pragma once
// StdioServer is one downstream MCP server speaking the stdio transport: a child process started
// with a cleared environment (only the config's allow-listed and fixed variables), in its own
// process group, with stdin/stdout carrying newline-delimited JSON-RPC and stderr captured.
//
// Guarantees:
//   * Start() spawns the process and first asks `server/discover` (with the 2026-07-28 _meta
//     envelope). A server that lists 2026-07-28 in supportedVersions is spoken to in that
//     stateless era: no initialize, every request carries the envelope (era.h), and its results
//     are returned in 2025-11-25 shapes (resultType and cache fields removed). Any other answer
//     (an error such as -32601, or a result without the revision) means the 2025 eras: the
//     initialize handshake, offering kLatestVersion and accepting whichever of
//     kSupportedVersions the server answers with (else kMcpVersionUnsupported, and the process
//     is stopped). A server that exits or does not answer the probe within startup_timeout_ms
//     is restarted at once and initialized without a probe, now and on every later restart.
//   * Call() fails, never hangs: after the server's timeout_ms it fails with
//     kMcpServerUnavailable, sends notifications/cancelled, and treats the server as hung (the
//     process group is killed). A server that exits fails every pending call with
//     kMcpServerUnavailable. The next Call() restarts it, but no sooner than the back-off
//     (100 ms doubling to 10 s, reset once a process has lived 10 s); calls before then fail
//     immediately with the back-off stated.
//   * A line over max_message_bytes, or one that is not JSON-RPC, is a protocol error: the server
//     is stopped (a peer that breaks framing cannot be resynchronised safely).
//   * Notifications over max_notifications_per_sec are dropped (counted and reported once per
//     second through on_event).
//   * stderr never reaches the client: the first 64 KiB are kept, and on every exit on_event gets
//     its SHA-256, its size and a bounded excerpt (the last 512 bytes) for the owner's log.
//
// Thread-safe: Call()/Notify()/Respond() from any thread. Callbacks run on the server's reader
// thread and must not block on this server.

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "custos/core/json.h"
#include "custos/core/result.h"
#include "custos/mcp/config.h"
#include "custos/mcp/downstream.h"
#include "custos/mcp/jsonrpc.h"

namespace custos::mcp {

inline constexpr std::string_view kLatestVersion = "2025-11-25";
// Newest first: the eras the gateway speaks with clients and servers.
inline constexpr std::string_view kSupportedVersions[] = {"2025-11-25", "2025-06-18", "2025-03-26"};
bool IsSupportedVersion(std::string_view v);

class StdioServer final : public Downstream {
 public:
  using Callbacks = Downstream::Callbacks;

  StdioServer(ServerConfig config, Callbacks callbacks);
  ~StdioServer() override;
  StdioServer(const StdioServer&) = delete;
  StdioServer& operator=(const StdioServer&) = delete;

  // Starts (or restarts, after the back-off) the process and initializes it. OK if running.
  Status Start() override;
  // Sends a request and waits for the server's response: a Message of type kResponse or kError
  // (a JSON-RPC error from the server is an answer, not a failure of the call).
  // `on_sent`, if set, receives the request's id once it is written (for Cancel()).
  Result<Message> Call(const std::string& method, const Json& params,
                       const std::function<void(int64_t)>& on_sent = nullptr) override;
  // Ends a pending Call() now (it fails with kMcpCancelled) and tells the server with
  // notifications/cancelled. The server is not treated as hung. No-op if `id` is not pending.
  void Cancel(int64_t id, const std::string& reason) override;
  Status Notify(const std::string& method, const Json& params) override;
  // Answers a server → client request.
  Status Respond(const Message& response) override;
  // Stops the process (SIGKILL to its group) and fails pending calls.
  void Stop() override;
  // subscriptions/listen rides stdin/stdout: the acknowledgement and the stamped notifications
  // arrive among the server's other messages; the stream ends with the server's response to it,
  // the process's exit, or notifications/cancelled from StopListening().
  Result<Message> Listen(const Json& params) override;
  void StopListening() override;
  void OfferClientCapabilities(const Json& capabilities) override;

  const ServerConfig& config() const override { return config_; }
  // What the last successful initialize (or server/discover) returned.
  std::string protocol_version() const override;
  // Whether the server speaks the stateless 2026-07-28 era (see Start()).
  bool stateless() const override;
  Json capabilities() const override;
  Json server_info() const override;
  int64_t restarts() const;

 private:
  struct Proc;
  struct Pending {
    bool done = false;
    Result<Message> result = Status(Reason::kInternal, "unset");
  };

  Status Spawn();  // REQUIRES: start_mu_ held
  // server/discover on the freshly spawned process. Sets *modern; on failure the process is gone.
  Status Discover(bool* modern);  // REQUIRES: start_mu_ held
  Status Initialize();            // REQUIRES: start_mu_ held
  // `params` with the gateway's 2026-07-28 envelope in _meta (offered_ as its capabilities).
  Json WithEnvelope(const Json& params) const;
  Result<Message> CallLocked(const std::string& method, const Json& params, int64_t timeout_ms,
                             const std::function<void(int64_t)>& on_sent = nullptr);
  Status WriteLine(const std::string& line, int64_t deadline_ms);
  void ReadLoop(std::shared_ptr<Proc> p);
  void StderrLoop(std::shared_ptr<Proc> p);
  void OnExit(const std::shared_ptr<Proc>& p, const std::string& why);
  void KillProc(const std::shared_ptr<Proc>& p);
  // A notification on the listen stream: the acknowledgement is taken for Listen(), the others
  // lose their stamp; false for one stamped by another (an ended) stream. REQUIRES: mu_ held.
  bool TakeListenNotification(Message* n);
  // Ends the listen stream as the server's doing (its response, its exit): on_event is told.
  void ListenEnded(const std::string& why);
  void CancelListen();  // REQUIRES: listen_call_mu_ held

  const ServerConfig config_;
  const Callbacks cb_;

  std::mutex start_mu_;  // serialises Start()/Stop()
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::shared_ptr<Proc> proc_;  // guarded by mu_
  std::map<int64_t, std::shared_ptr<Pending>> pending_;
  int64_t next_id_ = 1;
  int64_t backoff_ms_ = 100;
  int64_t next_start_ms_ = 0;
  std::string last_exit_;
  int64_t restarts_ = -1;
  std::string version_;
  bool stateless_ = false;      // guarded by mu_
  bool skip_discover_ = false;  // the server failed the probe once: initialize it directly
  Json capabilities_;
  Json server_info_;
  Json offered_ = Json::object();  // guarded by mu_; see OfferClientCapabilities()
  std::mutex listen_call_mu_;      // serialises Listen()/StopListening()
  // The listen stream (guarded by mu_): its request id (0: none), whether it was acknowledged,
  // and the answer Listen() waits for.
  int64_t listen_id_ = 0;
  bool listen_acked_ = false;
  std::optional<Result<Message>> listen_answer_;
  std::mutex write_mu_;
  std::vector<std::shared_ptr<Proc>> old_procs_;  // joined on restart/destruction
};

}  // namespace custos::mcp

// custosd client for Node 20: node:http(s) over TCP or a Unix socket (socketPath), no
// dependencies. An https URL is verified against `ca` (PEM text or a file path; default: Node's
// CAs). With agentName + signingKey (an Ed25519 32-byte seed or KeyObject) every request is signed
// (decision 022) instead of carrying an API key.
// Every daemon error ({"error":{"reason","message","at"}}) is thrown as the class named for its
// stable reason code (docs/reason-codes.md), all subclasses of CustosError. A denied syscall is a
// result whose decision says why; {check: true} throws it instead.
import { createHash, createPrivateKey, randomBytes, sign as edSign } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import http from "node:http";
import https from "node:https";

// The reason codes of include/custos/core/reason.h, in table order (the tests compare them with
// `custos reasons`).
export const REASONS = [
  "ok",
  "internal_error",
  "malformed_json",
  "schema_violation",
  "payload_too_large",
  "invalid_utf8",
  "nesting_too_deep",
  "unknown_syscall",
  "unknown_field",
  "unsupported_version",
  "invalid_argument",
  "unknown_agent",
  "capability_missing",
  "token_invalid",
  "token_expired",
  "token_revoked",
  "run_mismatch",
  "token_missing",
  "token_uses_exhausted",
  "token_rate_limited",
  "no_matching_rule",
  "denied_by_rule",
  "path_not_allowed",
  "host_not_allowed",
  "tool_not_allowed",
  "model_not_allowed",
  "secret_not_allowed",
  "approval_required",
  "approval_denied",
  "approval_timeout",
  "token_check_failed",
  "flow_violation",
  "secret_in_egress",
  "budget_exhausted",
  "unknown_handle",
  "handle_expired",
  "foreign_handle",
  "not_found",
  "version_conflict",
  "already_exists",
  "path_escape",
  "address_not_allowed",
  "redirect_denied",
  "mailbox_empty",
  "effect_failed",
  "effect_timeout",
  "assertion_failed",
  "policy_parse_error",
  "policy_unknown_key",
  "policy_wrong_type",
  "policy_bad_pattern",
  "policy_duplicate_rule",
  "policy_invalid",
  "log_corrupt",
  "log_gap",
  "store_error",
  "key_error",
  "unavailable",
  "io_error",
  "no_checkpoint",
  "payload_unreadable",
  "rotation_invalid",
  "checkpoint_wrong_signer",
  "replay_fact_unknown",
  "replay_policy_mismatch",
  "replay_mismatch",
  "unauthenticated",
  "identity_mismatch",
  "admin_required",
  "route_not_found",
  "method_not_allowed",
  "unsupported_media_type",
  "request_timeout",
  "headers_too_large",
  "malformed_http",
  "insecure_bind",
  "tls_config_error",
  "signature_invalid",
  "signature_stale",
  "nonce_replayed",
  "unknown_agent_key",
  "mcp_unknown_method",
  "mcp_descriptor_changed",
  "mcp_tool_unclassified",
  "mcp_server_unavailable",
  "mcp_protocol_error",
  "mcp_version_unsupported",
  "mcp_unknown_tool",
  "mcp_config_error",
  "mcp_cancelled",
  "mcp_session_not_found",
  "mcp_session_required",
  "mcp_origin_refused",
  "mcp_not_acceptable",
  "mcp_token_invalid",
  "mcp_session_forbidden",
  "mcp_header_mismatch",
  "mcp_envelope_invalid",
  "mcp_subject_unmapped",
  "mcp_resume_unavailable",
  "mcp_request_state_invalid",
];

export class CustosError extends Error {
  constructor(reason, message = "", at = "", status = 0) {
    super(`${reason}: ${message}${at ? ` (at ${at})` : ""}`);
    this.name = "CustosError";
    this.reason = reason;
    this.detail = message;
    this.at = at;
    this.status = status;
  }
}

const toClassName = (r) =>
  r.split("_").map((p) => p[0].toUpperCase() + p.slice(1)).join("") + "Error";

/** One subclass of CustosError per reason code, by class name (e.g. errors.BudgetExhaustedError). */
export const errors = {};
const byReason = new Map();
for (const reason of REASONS) {
  if (reason === "ok") continue;
  const name = toClassName(reason);
  const cls = {
    [name]: class extends CustosError {
      constructor(message = "", at = "", status = 0) {
        super(reason, message, at, status);
        this.name = name;
      }
    },
  }[name];
  errors[name] = cls;
  byReason.set(reason, cls);
}

export function errorFor(reason, message = "", at = "", status = 0) {
  const cls = byReason.get(reason);
  return cls ? new cls(message, at, status) : new CustosError(reason, message, at, status);
}

function checked(result, check) {
  if (check && result.decision.verdict !== "allow") {
    const d = result.decision;
    throw errorFor(d.reason, d.explanation ?? "", d.at ?? "", 200);
  }
  return result;
}

/** A streamed call's event, typed by name (unknown names: null, skipped). */
function streamEvent(name, j) {
  switch (name) {
    case "decision":
      return { type: "decision", id: j.id, decision: j.decision, receipt: j.receipt ?? {}, approvalId: j.approval_id };
    case "progress":
      return { type: "progress", id: j.id, elapsedMs: j.elapsed_ms, outputBytes: j.output_bytes };
    case "output":
      return { type: "output", offset: j.offset, text: j.text, labels: j.labels ?? [] };
    case "result":
      return { type: "result", result: j };
    case "error": {
      const e = j.error ?? {};
      return { type: "error", error: errorFor(e.reason ?? "internal_error", e.message, e.at, 200) };
    }
    default:
      return null;
  }
}

export class Client {
  /**
   * new Client({url: "http://127.0.0.1:7300", apiKey}) or new Client({socketPath}); defaults from
   * $CUSTOS_URL / $CUSTOS_SOCKET / $CUSTOS_API_KEY. Connections are kept alive.
   */
  constructor({ url, socketPath, apiKey, run, timeoutMs = 60000, ca, agentName, signingKey } = {}) {
    url ??= socketPath ? undefined : process.env.CUSTOS_URL;
    socketPath ??= url ? undefined : process.env.CUSTOS_SOCKET;
    if (!url && !socketPath) throw new Error("give url or socketPath (or $CUSTOS_URL / $CUSTOS_SOCKET)");
    this.url = url ? new URL(url) : undefined;
    this.socketPath = socketPath;
    this.apiKey = apiKey ?? process.env.CUSTOS_API_KEY;
    this.run = run;
    this.timeoutMs = timeoutMs;
    this.tls = this.url?.protocol === "https:";
    this.http = this.tls ? https : http;
    const agentOptions = { keepAlive: true, maxSockets: 4 };
    if (this.tls) {
      agentOptions.minVersion = "TLSv1.2";
      if (ca) agentOptions.ca = ca.includes("-----BEGIN") || !existsSync(ca) ? ca : readFileSync(ca);
    }
    this.agent = new this.http.Agent(agentOptions);
    if (signingKey !== undefined) {
      if (!agentName) throw new Error("signingKey needs agentName");
      this.agentName = agentName;
      this.signingKey =
        signingKey instanceof Uint8Array || typeof signingKey === "string"
          ? createPrivateKey({
              // PKCS#8 wrapping of a raw Ed25519 seed (RFC 8410).
              key: Buffer.concat([
                Buffer.from("302e020100300506032b657004220420", "hex"),
                typeof signingKey === "string" ? Buffer.from(signingKey, "hex") : Buffer.from(signingKey),
              ]),
              format: "der",
              type: "pkcs8",
            })
          : signingKey;
    }
  }

  close() {
    this.agent.destroy();
  }

  /** The Custos-* headers of a signed request (docs/api/signed-requests.md). */
  _sign(method, path, body) {
    const ts = String(Math.floor(Date.now() / 1000));
    const nonce = randomBytes(18).toString("base64url");
    const digest = createHash("sha256").update(body ?? "").digest("hex");
    const canonical = ["custos-request-v1", method, path, this.agentName, ts, nonce, digest].join("\n");
    const msg = Buffer.concat([Buffer.from("custos/v1/signed_request\0"), Buffer.from(canonical)]);
    return {
      "Custos-Agent": this.agentName,
      "Custos-Timestamp": ts,
      "Custos-Nonce": nonce,
      "Custos-Signature": edSign(null, msg, this.signingKey).toString("hex"),
    };
  }

  _options(method, path, body) {
    // Over TLS, Node checks the certificate against the Host header: send the real one.
    const headers = { Host: this.tls ? this.url.host : "custosd" };
    if (this.signingKey) Object.assign(headers, this._sign(method, path, body));
    else if (this.apiKey) headers.Authorization = `Bearer ${this.apiKey}`;
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      headers["Content-Length"] = Buffer.byteLength(body);
    }
    const o = { method, path, headers, agent: this.agent, timeout: this.timeoutMs };
    if (this.socketPath) o.socketPath = this.socketPath;
    else {
      o.host = this.url.hostname;
      o.port = this.url.port || (this.tls ? 443 : 80);
    }
    return o;
  }

  /** One request: resolves to the decoded body, rejects with a CustosError subclass. */
  request(method, path, payload) {
    const body = payload === undefined ? undefined : JSON.stringify(payload);
    return new Promise((resolve, reject) => {
      const req = this.http.request(this._options(method, path, body), (res) => {
        const chunks = [];
        res.on("data", (c) => chunks.push(c));
        res.on("end", () => {
          const text = Buffer.concat(chunks).toString("utf8");
          const json = (res.headers["content-type"] ?? "").startsWith("application/json");
          let value = text;
          if (json && text) {
            try {
              value = JSON.parse(text);
            } catch (e) {
              reject(e);
              return;
            }
          }
          if (res.statusCode >= 400) {
            const err = (value && value.error) || {};
            reject(errorFor(err.reason ?? "internal_error", err.message ?? text, err.at ?? "", res.statusCode));
          } else {
            resolve(value);
          }
        });
      });
      req.on("timeout", () => req.destroy(new Error("custosd request timed out")));
      req.on("error", reject);
      if (body !== undefined) req.write(body);
      req.end();
    });
  }

  /** Any kernel syscall; a denial is a result unless {check: true}. */
  async syscall(kind, { target, args = {}, run, inputs, labels, token, intent, check = false } = {}) {
    const call = { run: run ?? this.run, kind, args };
    if (call.run === undefined) throw new Error("a syscall needs a run");
    for (const [k, v] of Object.entries({ target, inputs, labels, token, intent }))
      if (v !== undefined) call[k] = v;
    return checked(await this.request("POST", "/v1/syscall", call), check);
  }

  async invoke(tool, { args = {}, run, responseMode = "summary", token, check = false } = {}) {
    const body = { tool, run: run ?? this.run, args, response_mode: responseMode };
    if (token !== undefined) body.token = token;
    return checked(await this.request("POST", "/v1/invoke", body), check);
  }

  /**
   * Invokes a tool and yields its events as they come (decision 028): {type: "decision"} first
   * (the decision is in the log, the effect has not run), then "progress" / "output" (raw mode
   * only) while it runs, then {type: "result", result} (the body invoke() returns) or
   * {type: "error", error}. Errors before the call starts reject. Stopping early (break, return())
   * leaves the call running; its outcome is still recorded.
   */
  async *invokeStream(tool, { args = {}, run, responseMode = "summary", token } = {}) {
    const body = { tool, run: run ?? this.run, args, response_mode: responseMode, stream: true };
    if (token !== undefined) body.token = token;
    yield* this._stream("/v1/invoke", body);
  }

  /** Any syscall, streamed like invokeStream() (output events carry the raw frame's text). */
  async *syscallStream(kind, { target, args = {}, run } = {}) {
    const call = { run: run ?? this.run, kind, args };
    if (target !== undefined) call.target = target;
    yield* this._stream("/v1/syscall", call);
  }

  async *_stream(path, payload) {
    const body = JSON.stringify(payload);
    for await (const { name, data } of this._events("POST", path, body)) {
      if (!name) continue;
      const event = streamEvent(name, JSON.parse(data));
      if (!event) continue;
      yield event;
      if (event.type === "result" || event.type === "error") return;
    }
  }

  /** Opens a server-sent event stream on its own connection and yields {name, data} per event
   * (keep-alive comments are skipped); a non-stream answer throws its error. */
  async *_events(method, path, body) {
    const o = this._options(method, path, body);
    o.headers.Accept = "text/event-stream";
    o.agent = false; // its own connection: the stream ends with a close
    o.timeout = 0;
    const res = await new Promise((resolve, reject) => {
      const req = this.http.request(o, resolve);
      req.on("error", reject);
      req.end(body);
    });
    if (res.statusCode !== 200 || !(res.headers["content-type"] ?? "").startsWith("text/event-stream")) {
      const text = await new Promise((r) => {
        const c = [];
        res.on("data", (d) => c.push(d));
        res.on("end", () => r(Buffer.concat(c).toString()));
      });
      let err = {};
      try {
        err = JSON.parse(text).error ?? {};
      } catch {
        err = { message: text };
      }
      throw errorFor(err.reason ?? "internal_error", err.message, err.at, res.statusCode);
    }
    let buf = "";
    try {
      for await (const chunk of res) {
        buf += chunk.toString("utf8");
        let i;
        while ((i = buf.indexOf("\n\n")) >= 0) {
          const block = buf.slice(0, i);
          buf = buf.slice(i + 2);
          let name = "";
          const data = [];
          for (const line of block.split("\n")) {
            if (line.startsWith("event: ")) name = line.slice(7);
            else if (line.startsWith("data: ")) data.push(line.slice(6));
          }
          if (data.length) yield { name, data: data.join("\n") };
        }
      }
    } finally {
      res.destroy();
    }
  }

  expand(handle, { run, limit = 100, offset = 0, fields, filter } = {}) {
    const body = { handle, run: run ?? this.run, limit, offset };
    if (fields) body.fields = fields;
    if (filter) body.filter = filter;
    return this.request("POST", "/v1/expand", body);
  }

  async explain(kind, { target, args = {}, run } = {}) {
    const call = { run: run ?? this.run ?? "explain", kind, args };
    if (target !== undefined) call.target = target;
    return (await this.request("POST", "/v1/explain", call)).decision;
  }

  async trace(actionId) {
    return (await this.request("POST", "/v1/explain", { id: actionId })).entries;
  }

  async requestCapabilities(goal, limit = 10) {
    return (await this.request("POST", "/v1/request_capabilities", { goal, limit })).candidates;
  }

  async budgets(run) {
    const q = new URLSearchParams({ run: run ?? this.run });
    return (await this.request("GET", `/v1/budgets?${q}`)).remaining;
  }

  audit(filters = {}) {
    const q = new URLSearchParams(Object.entries(filters).filter(([, v]) => v !== undefined));
    const s = q.toString();
    return this.request("GET", `/v1/audit${s ? `?${s}` : ""}`);
  }

  /** Live log entries (server-sent events) as an async iterator; call return() to stop. */
  async *auditTail({ fromSeq } = {}) {
    const path = `/v1/audit/tail${fromSeq !== undefined ? `?from_seq=${fromSeq}` : ""}`;
    for await (const { data } of this._events("GET", path)) yield JSON.parse(data);
  }

  checkpoint(run) {
    return this.request("POST", "/v1/audit/checkpoint", run ? { run } : undefined);
  }

  prove(seq) {
    return this.request("GET", `/v1/audit/prove/${seq}`);
  }

  async approvals(state = "pending") {
    return (await this.request("GET", `/v1/approvals?state=${state}`)).approvals;
  }

  answerApproval(id, approve, note = "") {
    return this.request("POST", `/v1/approvals/${encodeURIComponent(id)}`, { approve, note });
  }

  /** Mints a capability token (admin); options: syscalls, resource_prefixes, ttl_ms, max_uses, ... */
  async grant(agent, run = "", options = {}) {
    return (await this.request("POST", "/v1/grant", { ...options, agent, run })).token;
  }

  /** Revokes a token or revocation id for every caller (admin). */
  revoke(token, note = "") {
    return this.request("POST", "/v1/revoke", { token, note });
  }

  reload() {
    return this.request("POST", "/v1/admin/reload");
  }

  health() {
    return this.request("GET", "/healthz");
  }

  ready() {
    return this.request("GET", "/readyz");
  }

  metrics() {
    return this.request("GET", "/metrics");
  }
}

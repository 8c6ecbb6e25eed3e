"""A custosd client over TCP (http or https) or the Unix socket, standard library only
(http.client, ssl). Signed requests (decision 022) additionally need PyNaCl (Debian's
python3-nacl) for Ed25519; API keys and socket peers need nothing beyond the standard library.

One Client holds one keep-alive connection and is not thread-safe: give each thread its own.
"""

import hashlib
import http.client
import json
import os
import secrets
import socket
import ssl
import time
import urllib.parse
from dataclasses import dataclass, field
from typing import Any, Dict, Iterator, List, Optional

from .errors import CustosError, error_for


@dataclass
class Decision:
    verdict: str
    stage: str
    rule: str
    reason: str
    explanation: str = ""
    suggestion: str = ""
    at: str = ""

    @property
    def allowed(self) -> bool:
        return self.verdict == "allow"

    @classmethod
    def from_json(cls, j: Dict[str, Any]) -> "Decision":
        return cls(j.get("verdict", "deny"), j.get("stage", ""), j.get("rule", ""),
                   j.get("reason", "internal_error"), j.get("explanation", ""),
                   j.get("suggestion", ""), j.get("at", ""))


@dataclass
class Handle:
    id: str
    labels: List[str]
    sha256: str = ""
    kind: str = ""
    size: int = 0


@dataclass
class SyscallResult:
    id: str
    decision: Decision
    handle: Optional[Handle] = None
    frame: Any = None
    usage: Dict[str, int] = field(default_factory=dict)
    receipt: Dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_json(cls, j: Dict[str, Any]) -> "SyscallResult":
        h = j.get("handle")
        handle = None
        if h:
            handle = Handle(h["id"], h.get("labels", []), h.get("sha256", ""), h.get("kind", ""),
                            h.get("size", 0))
        return cls(j.get("id", ""), Decision.from_json(j.get("decision", {})), handle,
                   j.get("frame"), j.get("usage", {}), j.get("receipt", {}))

    def check(self) -> "SyscallResult":
        """Returns self if allowed, else raises the exception class of the decision's reason."""
        if not self.decision.allowed:
            raise error_for(self.decision.reason, self.decision.explanation, self.decision.at, 200)
        return self


@dataclass
class DecisionEvent:
    """A streamed call's decision, sent as soon as it is in the log (before the effect runs)."""
    id: str
    decision: Decision
    receipt: Dict[str, Any] = field(default_factory=dict)
    approval_id: str = ""


@dataclass
class ProgressEvent:
    """The effect is still running: time since the decision, output bytes produced so far."""
    id: str
    elapsed_ms: int
    output_bytes: int


@dataclass
class OutputEvent:
    """Redacted output as the tool writes it (raw mode); offset counts bytes streamed before."""
    offset: int
    text: str
    labels: List[str] = field(default_factory=list)


@dataclass
class ResultEvent:
    """The last event: `body` is exactly what the same call returns without streaming."""
    result: SyscallResult
    body: Dict[str, Any]


@dataclass
class ErrorEvent:
    """The last event when the stream ends without a result (e.g. request_timeout)."""
    error: CustosError


StreamEvent = Any  # DecisionEvent | ProgressEvent | OutputEvent | ResultEvent | ErrorEvent


def _stream_event(name: str, j: Dict[str, Any]) -> Optional[StreamEvent]:
    if name == "decision":
        return DecisionEvent(j.get("id", ""), Decision.from_json(j.get("decision", {})),
                             j.get("receipt", {}), j.get("approval_id", ""))
    if name == "progress":
        return ProgressEvent(j.get("id", ""), j.get("elapsed_ms", 0), j.get("output_bytes", 0))
    if name == "output":
        return OutputEvent(j.get("offset", 0), j.get("text", ""), j.get("labels", []))
    if name == "result":
        return ResultEvent(SyscallResult.from_json(j), j)
    if name == "error":
        e = j.get("error", {})
        return ErrorEvent(error_for(e.get("reason", "internal_error"), e.get("message", ""),
                                    e.get("at", ""), 200))
    return None  # an event this client does not know: skipped


@dataclass
class Candidate:
    kind: str
    score: int
    why: str
    target: str = ""
    description: str = ""


class _UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float):
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        s.connect(self._path)
        self.sock = s


class Client:
    """Talks to custosd.

    Client(url="http://127.0.0.1:7300", api_key="ck_...")  -- TCP, Bearer key
    Client(socket_path="/run/user/1000/custos.sock")        -- Unix socket, uid-mapped identity
    Client(url="https://host:7300", ca_file="ca.pem", ...)  -- TLS, verified against ca_file
                                                               (default: the system CAs)
    Client(url=..., agent="worker", signing_key=SEED)       -- requests signed with the agent's
                                                               Ed25519 key (32-byte seed, or hex)
    With neither, $CUSTOS_URL or $CUSTOS_SOCKET; api_key defaults to $CUSTOS_API_KEY.
    """

    def __init__(self, url: Optional[str] = None, socket_path: Optional[str] = None,
                 api_key: Optional[str] = None, run: Optional[str] = None, timeout: float = 60.0,
                 ca_file: Optional[str] = None, agent: Optional[str] = None,
                 signing_key: Any = None):
        if url is None and socket_path is None:
            url = os.environ.get("CUSTOS_URL")
            socket_path = os.environ.get("CUSTOS_SOCKET")
        if url is None and socket_path is None:
            raise ValueError("give url= or socket_path= (or set $CUSTOS_URL / $CUSTOS_SOCKET)")
        self._url = urllib.parse.urlsplit(url) if url else None
        self._socket_path = socket_path
        self._api_key = api_key if api_key is not None else os.environ.get("CUSTOS_API_KEY")
        self._timeout = timeout
        self._conn = None
        self.run = run
        self._ssl = None
        if self._url is not None and self._url.scheme == "https":
            self._ssl = ssl.create_default_context(cafile=ca_file)
            self._ssl.minimum_version = ssl.TLSVersion.TLSv1_2
        self._agent = agent
        self._signer = None
        if signing_key is not None:
            if not agent:
                raise ValueError("signing_key needs agent=")
            try:
                import nacl.signing  # Debian python3-nacl
            except ImportError as e:
                raise RuntimeError("signed requests need PyNaCl (apt install python3-nacl)") from e
            seed = bytes.fromhex(signing_key) if isinstance(signing_key, str) else signing_key
            self._signer = nacl.signing.SigningKey(seed)

    # -- transport -------------------------------------------------------------------------
    def _connect(self, timeout=None):
        t = timeout if timeout is not None else self._timeout
        if self._socket_path:
            return _UnixHTTPConnection(self._socket_path, t)
        if self._ssl is not None:
            return http.client.HTTPSConnection(self._url.hostname, self._url.port or 443,
                                               timeout=t, context=self._ssl)
        return http.client.HTTPConnection(self._url.hostname, self._url.port or 80, timeout=t)

    def _sign(self, method, path, body):
        """The Custos-* headers of a signed request (decision 022, docs/api/signed-requests.md)."""
        ts = str(int(time.time()))
        nonce = secrets.token_urlsafe(18)
        canonical = "\n".join(["custos-request-v1", method, path, self._agent, ts, nonce,
                               hashlib.sha256(body or b"").hexdigest()]).encode()
        sig = self._signer.sign(b"custos/v1/signed_request\0" + canonical).signature
        return {"Custos-Agent": self._agent, "Custos-Timestamp": ts, "Custos-Nonce": nonce,
                "Custos-Signature": sig.hex()}

    def _headers(self, body, method="GET", path="/"):
        h = {"Host": "custosd"}
        if self._signer is not None:
            h.update(self._sign(method, path, body))
        elif self._api_key:
            h["Authorization"] = "Bearer " + self._api_key
        if body is not None:
            h["Content-Type"] = "application/json"
        return h

    def request(self, method: str, path: str, body: Any = None) -> Any:
        """One request; returns the decoded JSON (or text) body, raises CustosError subclasses."""
        data = None if body is None else json.dumps(body).encode()
        for attempt in (0, 1):
            if self._conn is None:
                self._conn = self._connect()
            try:
                self._conn.request(method, path, body=data,
                                   headers=self._headers(data, method, path))
                resp = self._conn.getresponse()
                raw = resp.read()
                break
            except (ConnectionError, http.client.HTTPException, OSError):
                # A keep-alive connection the server closed: retry once on a fresh one.
                self.close()
                if attempt == 1:
                    raise
        if resp.getheader("Connection", "").lower() == "close":
            self.close()
        ctype = resp.getheader("Content-Type", "")
        payload = json.loads(raw) if ctype.startswith("application/json") and raw else raw.decode()
        if resp.status >= 400:
            err = payload.get("error", {}) if isinstance(payload, dict) else {}
            raise error_for(err.get("reason", "internal_error"), err.get("message", str(payload)),
                            err.get("at", ""), resp.status)
        return payload

    def close(self):
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- the kernel ------------------------------------------------------------------------
    def syscall(self, kind: str, target: Optional[str] = None, args: Optional[dict] = None,
                run: Optional[str] = None, inputs: Optional[List[str]] = None,
                labels: Optional[List[str]] = None, token: Optional[str] = None,
                intent: Optional[str] = None, check: bool = False) -> SyscallResult:
        """Any kernel syscall. A denial is a result; check=True raises it as its reason's class."""
        call = {"run": run or self.run, "kind": kind, "args": args or {}}
        if call["run"] is None:
            raise ValueError("a syscall needs a run (run= here or Client(run=...))")
        for k, v in (("target", target), ("inputs", inputs), ("labels", labels),
                     ("token", token), ("intent", intent)):
            if v is not None:
                call[k] = v
        r = SyscallResult.from_json(self.request("POST", "/v1/syscall", call))
        return r.check() if check else r

    def invoke(self, tool: str, args: Optional[dict] = None, run: Optional[str] = None,
               response_mode: str = "summary", token: Optional[str] = None,
               check: bool = False) -> SyscallResult:
        """Invokes a tool; the frame is shaped by response_mode (summary|table|handle|raw)."""
        body = {"tool": tool, "run": run or self.run, "args": args or {},
                "response_mode": response_mode}
        if token is not None:
            body["token"] = token
        r = SyscallResult.from_json(self.request("POST", "/v1/invoke", body))
        return r.check() if check else r

    def invoke_stream(self, tool: str, args: Optional[dict] = None, run: Optional[str] = None,
                      response_mode: str = "summary", token: Optional[str] = None,
                      timeout: float = 300.0) -> Iterator[StreamEvent]:
        """Invokes a tool and yields its events as they come (decision 028): DecisionEvent first,
        then ProgressEvent / OutputEvent (raw mode only) while it runs, then ResultEvent (same
        body as invoke()) or ErrorEvent. Errors before the call starts raise CustosError.
        Closing the iterator early leaves the call running; its outcome is still recorded."""
        body = {"tool": tool, "run": run or self.run, "args": args or {},
                "response_mode": response_mode, "stream": True}
        if token is not None:
            body["token"] = token
        return self._stream("/v1/invoke", body, timeout)

    def syscall_stream(self, kind: str, target: Optional[str] = None,
                       args: Optional[dict] = None, run: Optional[str] = None,
                       timeout: float = 300.0) -> Iterator[StreamEvent]:
        """Any syscall, streamed like invoke_stream() (output events carry the raw frame's text)."""
        call = {"run": run or self.run, "kind": kind, "args": args or {}}
        if target is not None:
            call["target"] = target
        return self._stream("/v1/syscall", call, timeout)

    def _stream(self, path: str, body: dict, timeout: float) -> Iterator[StreamEvent]:
        data = json.dumps(body).encode()
        conn = self._connect(timeout)  # its own connection: the stream ends with a close
        headers = self._headers(data, "POST", path)
        headers["Accept"] = "text/event-stream"
        try:
            conn.request("POST", path, body=data, headers=headers)
            resp = conn.getresponse()
            if resp.status != 200 or not resp.getheader("Content-Type", "").startswith(
                    "text/event-stream"):
                raw = resp.read()
                try:
                    err = json.loads(raw).get("error", {})
                except ValueError:
                    err = {"message": raw.decode(errors="replace")}
                raise error_for(err.get("reason", "internal_error"), err.get("message", ""),
                                err.get("at", ""), resp.status)
        except BaseException:
            conn.close()
            raise
        return self._events(conn, resp)

    @staticmethod
    def _events(conn, resp) -> Iterator[StreamEvent]:
        try:
            name, data = "", []
            for line in resp:
                line = line.decode().rstrip("\r\n")
                if line.startswith("event: "):
                    name = line[7:]
                elif line.startswith("data: "):
                    data.append(line[6:])
                elif line == "":
                    if name and data:
                        ev = _stream_event(name, json.loads("\n".join(data)))
                        if ev is not None:
                            yield ev
                            if isinstance(ev, (ResultEvent, ErrorEvent)):
                                return
                    name, data = "", []
        finally:
            conn.close()

    def expand(self, handle: str, run: Optional[str] = None, limit: int = 100, offset: int = 0,
               fields: Optional[List[str]] = None, filter: Optional[dict] = None) -> SyscallResult:
        """Pages through a handle's content: rows of a JSON array (filter, fields), else lines."""
        body = {"handle": handle, "run": run or self.run, "limit": limit, "offset": offset}
        if fields is not None:
            body["fields"] = fields
        if filter is not None:
            body["filter"] = filter
        return SyscallResult.from_json(self.request("POST", "/v1/expand", body))

    def explain(self, kind: str, target: Optional[str] = None, args: Optional[dict] = None,
                run: Optional[str] = None) -> Decision:
        """What the kernel would decide now; nothing is performed or recorded."""
        call = {"run": run or self.run or "explain", "kind": kind, "args": args or {}}
        if target is not None:
            call["target"] = target
        return Decision.from_json(self.request("POST", "/v1/explain", call)["decision"])

    def trace(self, action_id: str) -> List[dict]:
        """The recorded log entries of one action (syscall id)."""
        return self.request("POST", "/v1/explain", {"id": action_id})["entries"]

    def request_capabilities(self, goal: str, limit: int = 10) -> List[Candidate]:
        j = self.request("POST", "/v1/request_capabilities", {"goal": goal, "limit": limit})
        return [Candidate(c["kind"], c["score"], c["why"], c.get("target", ""),
                          c.get("description", "")) for c in j["candidates"]]

    def budgets(self, run: Optional[str] = None) -> Dict[str, Any]:
        q = urllib.parse.urlencode({"run": run or self.run})
        return self.request("GET", "/v1/budgets?" + q)["remaining"]

    # -- audit -------------------------------------------------------------------------------
    def audit(self, **filters) -> dict:
        """Entries filtered by agent, run, decision, since_ms, until_ms, from_seq, limit, offset."""
        q = urllib.parse.urlencode({k: v for k, v in filters.items() if v is not None})
        return self.request("GET", "/v1/audit" + ("?" + q if q else ""))

    def audit_tail(self, from_seq: Optional[int] = None, timeout: float = 30.0) -> Iterator[dict]:
        """Yields new log entries as they are appended (server-sent events) until closed."""
        conn = self._connect(timeout)
        q = "" if from_seq is None else "?from_seq=%d" % from_seq
        conn.request("GET", "/v1/audit/tail" + q,
                     headers=self._headers(None, "GET", "/v1/audit/tail" + q))
        resp = conn.getresponse()
        if resp.status != 200:
            err = json.loads(resp.read()).get("error", {})
            conn.close()
            raise error_for(err.get("reason", "internal_error"), err.get("message", ""),
                            err.get("at", ""), resp.status)
        try:
            data = []
            for line in resp:
                line = line.decode().rstrip("\n")
                if line.startswith("data: "):
                    data.append(line[6:])
                elif line == "" and data:
                    yield json.loads("\n".join(data))
                    data = []
        finally:
            conn.close()

    def checkpoint(self, run: Optional[str] = None) -> SyscallResult:
        body = {"run": run} if run else None
        return SyscallResult.from_json(self.request("POST", "/v1/audit/checkpoint", body))

    def prove(self, seq: int) -> dict:
        return self.request("GET", "/v1/audit/prove/%d" % seq)

    # -- admin -------------------------------------------------------------------------------
    def approvals(self, state: str = "pending") -> List[dict]:
        return self.request("GET", "/v1/approvals?state=" + state)["approvals"]

    def answer_approval(self, approval_id: str, approve: bool, note: str = "") -> dict:
        return self.request("POST", "/v1/approvals/" + urllib.parse.quote(approval_id),
                            {"approve": approve, "note": note})

    def grant(self, agent: str, run: str = "", **options) -> str:
        """Mints a capability token for agent (admin); options: syscalls, resource_prefixes,
        ttl_ms, max_uses, rate_count, rate_window_ms. Pass it as token= to syscall/invoke."""
        return self.request("POST", "/v1/grant", dict(options, agent=agent, run=run))["token"]

    def revoke(self, token: str, note: str = "") -> dict:
        """Revokes a token (or a revocation id) for every caller (admin)."""
        return self.request("POST", "/v1/revoke", {"token": token, "note": note})

    def reload(self) -> dict:
        return self.request("POST", "/v1/admin/reload")

    # -- probes ------------------------------------------------------------------------------
    def health(self) -> dict:
        return self.request("GET", "/healthz")

    def ready(self) -> dict:
        return self.request("GET", "/readyz")

    def metrics(self) -> str:
        return self.request("GET", "/metrics")

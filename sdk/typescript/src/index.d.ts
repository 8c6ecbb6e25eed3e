// Types of the custosd client (src/index.mjs). Wire shapes: docs/api/openapi.yaml.

export declare const REASONS: readonly string[];

export declare class CustosError extends Error {
  constructor(reason: string, message?: string, at?: string, status?: number);
  readonly reason: string;
  readonly detail: string;
  readonly at: string;
  /** HTTP status; 200 for a denial raised by {check: true}. */
  readonly status: number;
}

/** One subclass per reason code, e.g. errors.BudgetExhaustedError, errors.UnauthenticatedError. */
export declare const errors: Record<string, typeof CustosError>;
export declare function errorFor(reason: string, message?: string, at?: string, status?: number): CustosError;

export interface Decision {
  verdict: "allow" | "deny" | "require_approval";
  stage: string;
  rule: string;
  reason: string;
  explanation?: string;
  suggestion?: string;
  at?: string;
}

export interface Handle {
  id: string;
  labels: string[];
  sha256: string;
  kind: string;
  size: number;
}

/** Events of a streamed call, in order: decision, then progress/output, then result or error. */
export type StreamEvent =
  | { type: "decision"; id: string; decision: Decision; receipt: Record<string, unknown>; approvalId?: string }
  | { type: "progress"; id: string; elapsedMs: number; outputBytes: number }
  | { type: "output"; offset: number; text: string; labels: string[] }
  | { type: "result"; result: SyscallResult & { response_mode?: string } }
  | { type: "error"; error: CustosError };

export interface SyscallResult {
  id: string;
  decision: Decision;
  handle?: Handle;
  frame?: unknown;
  usage?: Record<string, number>;
  receipt: { decision_seq: number; decision_hash: string; outcome_seq?: number; outcome_hash?: string };
  response_mode?: "summary" | "table" | "handle" | "raw";
}

export interface Candidate {
  kind: string;
  target?: string;
  description?: string;
  score: number;
  why: string;
}

export interface ClientOptions {
  url?: string;
  socketPath?: string;
  apiKey?: string;
  /** https only: trusted CA certificates, PEM text or a file path (default: Node's CAs). */
  ca?: string | Buffer;
  /** With signingKey: sign every request as this agent (decision 022) instead of an API key. */
  agentName?: string;
  /** Ed25519 32-byte seed (bytes or hex) or a private KeyObject. */
  signingKey?: Uint8Array | string | import("node:crypto").KeyObject;
  run?: string;
  timeoutMs?: number;
}

export declare class Client {
  constructor(options?: ClientOptions);
  close(): void;
  request(method: string, path: string, payload?: unknown): Promise<any>;
  syscall(
    kind: string,
    options?: {
      target?: string;
      args?: Record<string, unknown>;
      run?: string;
      inputs?: string[];
      labels?: string[];
      token?: string;
      intent?: string;
      check?: boolean;
    },
  ): Promise<SyscallResult>;
  invoke(
    tool: string,
    options?: {
      args?: Record<string, unknown>;
      run?: string;
      responseMode?: "summary" | "table" | "handle" | "raw";
      token?: string;
      check?: boolean;
    },
  ): Promise<SyscallResult>;
  expand(
    handle: string,
    options?: { run?: string; limit?: number; offset?: number; fields?: string[]; filter?: Record<string, unknown> },
  ): Promise<SyscallResult>;
  explain(kind: string, options?: { target?: string; args?: Record<string, unknown>; run?: string }): Promise<Decision>;
  trace(actionId: string): Promise<Record<string, unknown>[]>;
  requestCapabilities(goal: string, limit?: number): Promise<Candidate[]>;
  budgets(run?: string): Promise<Record<string, number | "unlimited">>;
  audit(filters?: Record<string, string | number | undefined>): Promise<{ entries: Record<string, unknown>[]; next_from_seq?: number }>;
  /** Streams a tool invocation as typed events (decision 028). */
  invokeStream(
    tool: string,
    options?: {
      args?: Record<string, unknown>;
      run?: string;
      responseMode?: "summary" | "table" | "handle" | "raw";
      token?: string;
    },
  ): AsyncGenerator<StreamEvent>;
  /** Streams any syscall as typed events. */
  syscallStream(
    kind: string,
    options?: { target?: string; args?: Record<string, unknown>; run?: string },
  ): AsyncGenerator<StreamEvent>;
  auditTail(options?: { fromSeq?: number }): AsyncGenerator<Record<string, unknown>>;
  checkpoint(run?: string): Promise<SyscallResult>;
  prove(seq: number): Promise<Record<string, unknown>>;
  approvals(state?: "pending" | "approved" | "denied" | "expired" | "all"): Promise<Record<string, unknown>[]>;
  answerApproval(id: string, approve: boolean, note?: string): Promise<{ id: string; state: string }>;
  grant(
    agent: string,
    run?: string,
    options?: { syscalls?: string[]; resource_prefixes?: string[]; ttl_ms?: number; max_uses?: number; rate_count?: number; rate_window_ms?: number },
  ): Promise<string>;
  revoke(token: string, note?: string): Promise<{ revoked: boolean }>;
  reload(): Promise<{ policy: string; policy_hash: string; old_policy_hash: string }>;
  health(): Promise<{ status: string }>;
  ready(): Promise<{ status: string; log_entries: number }>;
  metrics(): Promise<string>;
}

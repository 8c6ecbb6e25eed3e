// The TypeScript/Node client against a real custosd started here (port 0 + a temp socket).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn, execFileSync } from "node:child_process";
import { mkdtempSync, mkdirSync, writeFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";

import { Client, CustosError, errors, REASONS } from "../src/index.mjs";

const CUSTOSD = process.env.CUSTOSD_BIN ?? "custosd";
const CUSTOS = process.env.CUSTOS_BIN ?? "custos";
const POLICY = `
[policy]
name = "ts-sdk-test"
[budgets.default]
tool_calls = 3
[agents.worker]
syscalls = ["memory.alloc", "memory.read", "assert", "tool.invoke", "context.read", "audit.commit"]
[agents.reader]
syscalls = ["memory.read"]
[agents.ops]
syscalls = ["assert"]
[tools]
allow = ["echo", "ticker"]
[[tools.registry]]
name = "echo"
command = ["/bin/cat"]
description = "Echoes its input back."
[[tools.registry]]
name = "ticker"
command = ["/bin/sh", "-c", "cat >/dev/null; echo one; sleep 0.3; echo two; sleep 0.3; echo three"]
description = "Prints three lines, slowly."
`;

let dir, daemon, url, socketPath;
const keys = {};

before(async () => {
  dir = mkdtempSync(join(tmpdir(), "custos-ts-"));
  const data = join(dir, "data");
  mkdirSync(data, { mode: 0o700 });
  writeFileSync(join(dir, "policy.toml"), POLICY);
  writeFileSync(
    join(data, "config.toml"),
    `[server]\nadmins = ["ops"]\nstream_progress_ms = 50\n[server.peers]\n"${process.getuid()}" = "worker"\n`,
  );
  for (const a of ["worker", "reader", "ops"])
    keys[a] = execFileSync(CUSTOS, ["--data-dir", data, "apikey", "add", a]).toString().trim();
  socketPath = join(dir, "custos.sock");
  daemon = spawn(CUSTOSD, ["--data-dir", data, "--policy", join(dir, "policy.toml"), "--listen",
    "127.0.0.1:0", "--socket", socketPath], { stdio: ["ignore", "pipe", "ignore"] });
  const lines = createInterface({ input: daemon.stdout });
  for await (const line of lines) {
    const m = line.match(/^custosd: listening on tcp (.*)$/);
    if (m) url = `http://${m[1]}`;
    if (line.startsWith("custosd: ready")) break;
  }
  assert.ok(url, "custosd did not start");
});

after(async () => {
  const exited = new Promise((r) => daemon.on("exit", r));
  daemon.kill("SIGTERM");
  assert.equal(await exited, 0);
  rmSync(dir, { recursive: true, force: true });
});

const client = (agent = "worker", run = "r1") => new Client({ url, apiKey: keys[agent], run });

test("invokeStream yields the decision, progress and output, then the result", async () => {
  const c = client("worker", "stream-run");
  const events = [];
  for await (const e of c.invokeStream("ticker", { responseMode: "raw" })) events.push(e);
  const plain = await c.invoke("ticker", { responseMode: "raw" });
  c.close();
  assert.equal(events[0].type, "decision");
  assert.equal(events[0].decision.verdict, "allow");
  assert.ok(events[0].receipt.decision_seq > 0);
  const last = events.at(-1);
  assert.equal(last.type, "result");
  for (const e of events.slice(1, -1)) assert.ok(["progress", "output"].includes(e.type), e.type);
  const text = events.filter((e) => e.type === "output").map((e) => e.text).join("");
  assert.equal(text, "one\ntwo\nthree\n");
  const bytes = events.filter((e) => e.type === "progress").map((e) => e.outputBytes);
  assert.deepEqual(bytes, [...bytes].sort((a, b) => a - b));
  assert.equal(last.result.id, events[0].id);
  assert.equal(last.result.response_mode, "raw");
  assert.deepEqual(last.result.frame, plain.frame);
  assert.ok(last.result.receipt.outcome_seq > 0);
});

test("a streamed denial is a result; bad credentials reject before streaming", async () => {
  const c = client("worker", "stream-run-2");
  const events = [];
  for await (const e of c.syscallStream("tool.invoke", { target: "not-allowed" })) events.push(e);
  c.close();
  assert.equal(events[0].type, "decision");
  assert.equal(events[0].decision.verdict, "deny");
  assert.equal(events.at(-1).result.decision.reason, events[0].decision.reason);
  const bad = new Client({ url, apiKey: "ck_wrong", run: "r1" });
  await assert.rejects(
    async () => {
      for await (const e of bad.invokeStream("ticker")) void e;
    },
    (e) => e instanceof CustosError && e.reason === "unauthenticated",
  );
  bad.close();
});

test("every reason code has an error class", () => {
  const names = execFileSync(CUSTOS, ["reasons"]).toString().trim().split("\n")
    .map((l) => l.trim().split(/\s+/)[1]);
  assert.deepEqual(names, REASONS);
  assert.ok(new errors.BudgetExhaustedError("x") instanceof CustosError);
});

test("syscalls over TCP with keep-alive and over the Unix socket", async () => {
  const c = client();
  for (let i = 0; i < 5; i++) {
    const r = await c.syscall("memory.alloc", { target: `n${i}`, args: { value: i } });
    assert.equal(r.decision.verdict, "allow");
  }
  c.close();
  const s = new Client({ socketPath, run: "r1" });
  const r = await s.syscall("memory.alloc", { target: "sock", args: { value: 1 } });
  assert.equal(r.decision.verdict, "allow");
  assert.equal((await s.trace(r.id))[0].agent, "worker");
  s.close();
});

test("denials are results; check and errors throw reason classes", async () => {
  const c = client("reader");
  const r = await c.syscall("memory.alloc", { target: "x", args: { value: 1 } });
  assert.equal(r.decision.reason, "capability_missing");
  await assert.rejects(c.syscall("memory.alloc", { target: "x", args: { value: 1 }, check: true }),
    errors.CapabilityMissingError);
  await assert.rejects(c.request("POST", "/v1/syscall", { agent: "worker", run: "r1", kind: "memory.read", target: "x" }),
    errors.IdentityMismatchError);
  await assert.rejects(c.approvals(), errors.AdminRequiredError);
  c.close();
  const bad = new Client({ url, apiKey: "ck_wrong", run: "r1" });
  await assert.rejects(bad.health().then(() => bad.syscall("memory.read", { target: "x" })),
    (e) => e instanceof errors.UnauthenticatedError && e.status === 401);
  bad.close();
});

test("two clients share one budget through the daemon", async () => {
  const a = client("worker", "shared"), b = new Client({ socketPath, run: "shared" });
  const results = await Promise.all(
    Array.from({ length: 8 }, (_, i) => (i % 2 ? a : b).invoke("echo", { args: { i } })));
  assert.equal(results.filter((r) => r.decision.verdict === "allow").length, 3);
  assert.equal((await a.budgets()).tool_calls, 0);
  a.close();
  b.close();
});

test("invoke, expand, capabilities, audit, tail, checkpoint, prove, reload", async () => {
  const c = client("worker", "r2");
  const r = await c.invoke("echo", { args: { hello: "world" }, responseMode: "raw", check: true });
  assert.match(r.frame.text, /hello/);
  const e = await c.expand(r.handle.id);
  assert.match(e.frame.lines[0], /hello/);
  const caps = await c.requestCapabilities("echo my input");
  assert.ok(caps.some((k) => k.target === "echo"));

  const w = await c.syscall("memory.alloc", { target: "t", args: { value: 1 } });
  // From a known seq, so the test does not race the tail's "from now" start.
  const tail = c.auditTail({ fromSeq: w.receipt.decision_seq });
  const entry = (await tail.next()).value;
  assert.equal(entry.seq, w.receipt.decision_seq);
  assert.equal(entry.agent, "worker");
  await tail.return();

  const q = await c.audit({ decision: "allow", limit: 3 });
  assert.ok(q.entries.every((x) => x.agent === "worker"));
  assert.equal((await c.checkpoint()).decision.verdict, "allow");
  assert.equal((await c.prove(w.receipt.decision_seq)).seq, w.receipt.decision_seq);
  c.close();
  const ops = client("ops");
  assert.equal((await ops.reload()).policy, "ts-sdk-test");
  assert.deepEqual(await ops.approvals(), []);
  ops.close();
});

// The Node client over https (a self-signed certificate made here) and with signed requests.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn, execFileSync } from "node:child_process";
import { createPublicKey, generateKeyPairSync } from "node:crypto";
import { chmodSync, mkdtempSync, mkdirSync, writeFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";

import { Client } from "../src/index.mjs";

const CUSTOSD = process.env.CUSTOSD_BIN ?? "custosd";
const CUSTOS = process.env.CUSTOS_BIN ?? "custos";
const POLICY = `
[policy]
name = "ts-sdk-tls-test"
[agents.worker]
syscalls = ["memory.alloc"]
`;

let dir, daemon, url, cert, apiKey, privateKey;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), "custos-ts-tls-"));
  const data = join(dir, "data");
  mkdirSync(data, { mode: 0o700 });
  writeFileSync(join(dir, "policy.toml"), POLICY);
  cert = join(dir, "cert.pem");
  const key = join(dir, "key.pem");
  execFileSync("openssl", ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
    "-nodes", "-days", "2", "-subj", "/CN=custosd-test", "-addext", "subjectAltName=IP:127.0.0.1",
    "-keyout", key, "-out", cert], { stdio: "ignore" });
  chmodSync(key, 0o600);
  apiKey = execFileSync(CUSTOS, ["--data-dir", data, "apikey", "add", "worker"]).toString().trim();
  const pair = generateKeyPairSync("ed25519");
  privateKey = pair.privateKey;
  const pub = createPublicKey(privateKey).export({ format: "der", type: "spki" }).subarray(-32);
  execFileSync(CUSTOS, ["--data-dir", data, "agentkey", "add", "worker", pub.toString("hex")]);
  daemon = spawn(CUSTOSD, ["--data-dir", data, "--policy", join(dir, "policy.toml"), "--listen",
    "127.0.0.1:0", "--no-socket", "--tls-cert", cert, "--tls-key", key],
  { stdio: ["ignore", "pipe", "ignore"] });
  for await (const line of createInterface({ input: daemon.stdout })) {
    const m = line.match(/^custosd: listening on tls (.*)$/);
    if (m) url = `https://${m[1]}`;
    if (line.startsWith("custosd: ready")) break;
  }
  assert.ok(url, "custosd did not start with TLS");
});

after(async () => {
  const exited = new Promise((r) => daemon.on("exit", r));
  daemon.kill("SIGTERM");
  assert.equal(await exited, 0);
  rmSync(dir, { recursive: true, force: true });
});

test("https with a CA file, and refused without it", async () => {
  const c = new Client({ url, apiKey, ca: cert, run: "r1" });
  const r = await c.syscall("memory.alloc", { target: "t", args: { value: 1 } });
  assert.equal(r.decision.verdict, "allow");
  c.close();
  const untrusted = new Client({ url, apiKey, run: "r1" });
  await assert.rejects(untrusted.health(), (e) => /self.signed|certificate/i.test(e.message));
  untrusted.close();
});

test("signed requests authenticate; a wrong key is signature_invalid", async () => {
  const c = new Client({ url, ca: cert, agentName: "worker", signingKey: privateKey, run: "r1" });
  for (let i = 0; i < 3; i++) {
    const r = await c.syscall("memory.alloc", { target: `s${i}`, args: { value: i } });
    assert.equal(r.decision.verdict, "allow");
  }
  c.close();
  const wrong = new Client({ url, ca: cert, agentName: "worker",
    signingKey: new Uint8Array(32).fill(7), run: "r1" });
  await assert.rejects(wrong.syscall("memory.alloc", { target: "w", args: { value: 1 } }),
    (e) => e.reason === "signature_invalid");
  wrong.close();
});

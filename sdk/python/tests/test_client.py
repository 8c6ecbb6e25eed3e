"""The Python client against a real custosd (started here on port 0 and a temp socket)."""

import os
import shutil
import subprocess
import sys
import tempfile
import threading
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import custos  # noqa: E402

CUSTOSD = os.environ.get("CUSTOSD_BIN", "custosd")
CUSTOS = os.environ.get("CUSTOS_BIN", "custos")

POLICY = """
[policy]
name = "python-sdk-test"
[budgets.default]
tool_calls = 5
[agents.worker]
syscalls = ["memory.alloc", "memory.read", "assert", "audit.commit", "tool.invoke", "context.read"]
[agents.reader]
syscalls = ["memory.read", "assert"]
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
"""


class DaemonTestCase(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="custos-py-")
        cls.data = os.path.join(cls.tmp, "data")
        os.mkdir(cls.data, 0o700)
        cls.policy = os.path.join(cls.tmp, "policy.toml")
        with open(cls.policy, "w") as f:
            f.write(POLICY)
        with open(os.path.join(cls.data, "config.toml"), "w") as f:
            f.write('[server]\nadmins = ["ops"]\nstream_progress_ms = 50\n'
                    '[server.peers]\n"%d" = "worker"\n' % os.getuid())
        cls.keys = {}
        for agent in ("worker", "reader", "ops"):
            cls.keys[agent] = subprocess.check_output(
                [CUSTOS, "--data-dir", cls.data, "apikey", "add", agent], text=True).strip()
        cls.socket = os.path.join(cls.tmp, "custos.sock")
        cls.proc = subprocess.Popen(
            [CUSTOSD, "--data-dir", cls.data, "--policy", cls.policy, "--listen", "127.0.0.1:0",
             "--socket", cls.socket], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            text=True)
        cls.port = None
        for line in cls.proc.stdout:
            if line.startswith("custosd: listening on tcp "):
                cls.port = int(line.rsplit(":", 1)[1])
            if line.startswith("custosd: ready"):
                break
        assert cls.port, "custosd did not start"
        cls.url = "http://127.0.0.1:%d" % cls.port

    @classmethod
    def tearDownClass(cls):
        cls.proc.terminate()
        cls.proc.wait(timeout=30)
        cls.proc.stdout.close()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def client(self, agent="worker", run="r1"):
        return custos.Client(url=self.url, api_key=self.keys[agent], run=run)


class ClientTest(DaemonTestCase):
    def test_every_reason_code_has_an_exception_class(self):
        out = subprocess.check_output([CUSTOS, "reasons"], text=True)
        names = [line.split()[1] for line in out.splitlines() if line.strip()]
        self.assertEqual(names, custos.REASONS)
        self.assertTrue(issubclass(custos.BudgetExhaustedError, custos.CustosError))
        self.assertEqual(custos.IdentityMismatchError.reason, "identity_mismatch")

    def test_probes(self):
        with self.client() as c:
            self.assertEqual(c.health()["status"], "ok")
            self.assertEqual(c.ready()["status"], "ready")
            self.assertIn("custos_decisions_total", c.metrics())

    def test_syscall_over_tcp_and_keep_alive(self):
        with self.client() as c:
            for i in range(5):
                r = c.syscall("memory.alloc", "note%d" % i, {"value": {"i": i}})
                self.assertTrue(r.decision.allowed, r)
                self.assertGreater(r.receipt["decision_seq"], 0)

    def test_syscall_over_the_unix_socket_uses_the_peer_identity(self):
        with custos.Client(socket_path=self.socket, run="r1") as c:
            r = c.syscall("memory.alloc", "from-socket", {"value": 1})
            self.assertTrue(r.decision.allowed, r)
            self.assertEqual(c.trace(r.id)[0]["agent"], "worker")

    def test_a_denial_is_a_result_and_check_raises_its_reason(self):
        with self.client("reader") as c:
            r = c.syscall("memory.alloc", "x", {"value": 1})
            self.assertEqual(r.decision.verdict, "deny")
            self.assertEqual(r.decision.reason, "capability_missing")
            with self.assertRaises(custos.CapabilityMissingError):
                c.syscall("memory.alloc", "x", {"value": 1}, check=True)

    def test_budget_is_enforced_and_reported(self):
        with self.client(run="budget-run") as c:
            self.assertEqual(c.budgets()["tool_calls"], 5)
            allowed = 0
            for i in range(7):
                r = c.syscall("tool.invoke", "echo", {"arguments": {"i": i}})
                allowed += r.decision.allowed
                if not r.decision.allowed:
                    self.assertEqual(r.decision.reason, "budget_exhausted")
            self.assertEqual(allowed, 5)
            self.assertEqual(c.budgets()["tool_calls"], 0)

    def test_wrong_credentials_and_identity_raise(self):
        with custos.Client(url=self.url, api_key="ck_nope", run="r1") as c:
            with self.assertRaises(custos.UnauthenticatedError) as e:
                c.syscall("memory.read", "x")
            self.assertEqual(e.exception.status, 401)
        with self.client("reader") as c:
            with self.assertRaises(custos.IdentityMismatchError):
                c.request("POST", "/v1/syscall",
                          {"agent": "worker", "run": "r1", "kind": "memory.read", "target": "x"})
            with self.assertRaises(custos.AdminRequiredError):
                c.approvals()
            with self.assertRaises(custos.RouteNotFoundError):
                c.request("GET", "/v1/nope")

    def test_invoke_and_expand(self):
        with self.client(run="invoke-run") as c:
            r = c.invoke("echo", {"hello": "world"}, response_mode="raw", check=True)
            self.assertIn("hello", r.frame["text"])
            e = c.expand(r.handle.id)
            self.assertTrue(e.decision.allowed, e)
            self.assertIn("hello", e.frame["lines"][0])
            s = c.invoke("echo", {"x": 1})
            self.assertIn("summary", s.frame)

    def test_invoke_stream_yields_decision_progress_output_then_the_result(self):
        with self.client(run="stream-run") as c:
            events = list(c.invoke_stream("ticker", response_mode="raw"))
            plain = c.invoke("ticker", response_mode="raw")
        self.assertIsInstance(events[0], custos.DecisionEvent)
        self.assertTrue(events[0].decision.allowed)
        self.assertGreater(events[0].receipt["decision_seq"], 0)
        self.assertIsInstance(events[-1], custos.ResultEvent)
        for e in events[1:-1]:
            self.assertIsInstance(e, (custos.ProgressEvent, custos.OutputEvent))
        text = "".join(e.text for e in events if isinstance(e, custos.OutputEvent))
        self.assertEqual(text, "one\ntwo\nthree\n")
        seen = [e.output_bytes for e in events if isinstance(e, custos.ProgressEvent)]
        self.assertEqual(seen, sorted(seen))  # bytes so far only grow
        result = events[-1].result
        self.assertEqual(result.id, events[0].id)
        self.assertEqual(result.frame["text"], "one\ntwo\nthree\n")
        self.assertEqual(result.frame, plain.frame)
        self.assertGreater(result.receipt["outcome_seq"], 0)
        self.assertEqual(events[-1].body["response_mode"], "raw")

    def test_streamed_denial_and_errors(self):
        with self.client(run="stream-run-2") as c:
            events = list(c.syscall_stream("tool.invoke", "not-allowed"))
            self.assertFalse(events[0].decision.allowed)
            self.assertEqual(events[-1].result.decision.reason, events[0].decision.reason)
        bad = custos.Client(url=self.url, api_key="ck_wrong", run="r1")
        with self.assertRaises(custos.CustosError) as e:
            list(bad.invoke_stream("ticker"))
        self.assertEqual(e.exception.reason, "unauthenticated")

    def test_explain_and_capabilities(self):
        with self.client() as c:
            d = c.explain("memory.alloc", "x", {"value": 1})
            self.assertTrue(d.allowed)
            kinds = [(k.kind, k.target) for k in c.request_capabilities("echo my input back")]
            self.assertIn(("tool.invoke", "echo"), kinds)

    def test_audit_query_tail_checkpoint_and_prove(self):
        with self.client() as c:
            got = []
            ready = threading.Event()

            def tail():
                with self.client() as t:
                    it = t.audit_tail()
                    ready.set()
                    got.append(next(it))

            th = threading.Thread(target=tail)
            th.start()
            ready.wait(5)
            r = None
            for i in range(50):  # until the tail has seen one
                r = c.syscall("memory.alloc", "tail%d" % i, {"value": 1})
                th.join(0.1)
                if not th.is_alive():
                    break
            th.join(5)
            self.assertTrue(got and got[0]["agent"] == "worker", got)
            entries = c.audit(decision="allow", limit=5)["entries"]
            self.assertTrue(entries)
            self.assertTrue(all(e["agent"] == "worker" for e in entries))
            cp = c.checkpoint()
            self.assertTrue(cp.decision.allowed, cp)
            proof = c.prove(r.receipt["decision_seq"])
            self.assertEqual(proof["seq"], r.receipt["decision_seq"])

    def test_grant_and_revoke(self):
        with self.client("ops") as admin, self.client() as c:
            token = admin.grant("worker", "r1", syscalls=["memory.alloc"])
            self.assertTrue(c.syscall("memory.alloc", "g", {"value": 1}, token=token).decision.allowed)
            admin.revoke(token)
            r = c.syscall("memory.alloc", "g2", {"value": 1}, token=token)
            self.assertEqual(r.decision.reason, "token_revoked")
            with self.assertRaises(custos.AdminRequiredError):
                c.grant("worker")

    def test_admin_reload(self):
        with self.client("ops") as c:
            r = c.reload()
            self.assertEqual(r["policy"], "python-sdk-test")
            self.assertEqual(c.approvals(), [])


if __name__ == "__main__":
    unittest.main()


class TlsAndSignedTest(unittest.TestCase):
    """custosd serving TLS with a self-signed certificate; a signed-request agent key."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="custos-py-tls-")
        cls.data = os.path.join(cls.tmp, "data")
        os.mkdir(cls.data, 0o700)
        cls.policy = os.path.join(cls.tmp, "policy.toml")
        with open(cls.policy, "w") as f:
            f.write(POLICY)
        cls.cert = os.path.join(cls.tmp, "cert.pem")
        key = os.path.join(cls.tmp, "key.pem")
        subprocess.check_call(
            ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
             "-nodes", "-days", "2", "-subj", "/CN=custosd-test",
             "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", key, "-out", cls.cert],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.chmod(key, 0o600)
        cls.api_key = subprocess.check_output(
            [CUSTOS, "--data-dir", cls.data, "apikey", "add", "worker"], text=True).strip()
        cls.seed = None
        try:
            import nacl.signing
            cls.seed = os.urandom(32)
            pub = nacl.signing.SigningKey(cls.seed).verify_key.encode().hex()
            subprocess.check_call([CUSTOS, "--data-dir", cls.data, "agentkey", "add", "worker",
                                   pub], stdout=subprocess.DEVNULL)
        except ImportError:
            pass
        cls.proc = subprocess.Popen(
            [CUSTOSD, "--data-dir", cls.data, "--policy", cls.policy, "--listen", "127.0.0.1:0",
             "--no-socket", "--tls-cert", cls.cert, "--tls-key", key],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        cls.port = None
        for line in cls.proc.stdout:
            if line.startswith("custosd: listening on tls "):
                cls.port = int(line.rsplit(":", 1)[1])
            if line.startswith("custosd: ready"):
                break
        assert cls.port, "custosd did not start with TLS"
        cls.url = "https://127.0.0.1:%d" % cls.port

    @classmethod
    def tearDownClass(cls):
        cls.proc.terminate()
        cls.proc.wait(timeout=30)
        cls.proc.stdout.close()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def test_https_with_a_ca_file(self):
        with custos.Client(url=self.url, api_key=self.api_key, ca_file=self.cert, run="r1") as c:
            self.assertEqual(c.health()["status"], "ok")
            r = c.syscall("memory.alloc", "k", {"value": 1})
            self.assertEqual(r.decision.verdict, "allow")

    def test_https_without_trusting_the_certificate_fails(self):
        import ssl
        with custos.Client(url=self.url, api_key=self.api_key, run="r1") as c:
            with self.assertRaises(ssl.SSLCertVerificationError):
                c.health()

    def test_signed_requests(self):
        if self.seed is None:
            self.skipTest("PyNaCl (python3-nacl) is not importable: API keys only")
        with custos.Client(url=self.url, ca_file=self.cert, agent="worker",
                           signing_key=self.seed, run="r1") as c:
            for i in range(3):
                r = c.syscall("memory.alloc", "s%d" % i, {"value": i})
                self.assertEqual(r.decision.verdict, "allow")
        wrong = os.urandom(32)
        with custos.Client(url=self.url, ca_file=self.cert, agent="worker", signing_key=wrong,
                           run="r1") as c:
            with self.assertRaises(custos.CustosError) as e:
                c.syscall("memory.alloc", "bad", {"value": 1})
            self.assertEqual(e.exception.reason, "signature_invalid")

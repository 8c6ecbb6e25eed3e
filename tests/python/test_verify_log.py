"""Tests of tools/verify_log.py, the independent flight-log verifier, against the spec vectors,
tampered copies of them, and (when $CUSTOS_BIN is set) a log exported by the C++ kernel."""
import json
import os
import subprocess
import sys
import tempfile
import unittest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tools"))
import verify_log  # noqa: E402

VECTORS = os.path.join(ROOT, "docs", "spec", "vectors", "flight-log-chain.json")


def vector_lines():
    with open(VECTORS, encoding="utf-8") as f:
        return [e["jsonl"] for e in json.load(f)["entries"]]


class VectorsTest(unittest.TestCase):
    def test_vectors_verify(self):
        with open(VECTORS, encoding="utf-8") as f:
            count, head = verify_log.check_vectors(json.load(f))
        self.assertGreaterEqual(count, 4)
        self.assertEqual(len(head), 64)

    def test_genuine_export_verifies(self):
        count, _ = verify_log.verify_jsonl("\n".join(vector_lines()) + "\n")
        self.assertEqual(count, len(vector_lines()))


class TamperTest(unittest.TestCase):
    def assert_fails(self, lines, reason, seq):
        with self.assertRaises(verify_log.VerifyError) as ctx:
            verify_log.verify_lines(lines)
        self.assertEqual(ctx.exception.reason, reason)
        self.assertEqual(ctx.exception.seq, seq)

    def test_changed_byte_is_log_corrupt(self):
        lines = vector_lines()
        lines[1] = lines[1].replace('"decision"', '"decisioN"', 1)
        self.assert_fails(lines, "log_corrupt", 2)

    def test_deleted_entry_is_log_gap(self):
        lines = vector_lines()
        del lines[1]
        self.assert_fails(lines, "log_gap", 2)

    def test_reordered_entries_are_log_gap(self):
        lines = vector_lines()
        lines[1], lines[2] = lines[2], lines[1]
        self.assert_fails(lines, "log_gap", 2)

    def test_inserted_entry_is_log_gap(self):
        lines = vector_lines()
        lines.insert(2, lines[1])
        self.assert_fails(lines, "log_gap", 3)

    def test_rehashed_forgery_breaks_the_chain(self):
        # An attacker edits entry 2 and recomputes its hash: entry 3 no longer links to it.
        lines = vector_lines()
        obj = json.loads(lines[1])
        obj["explanation"] = obj["explanation"] + " (forged)"
        entry = {k: obj[k] for k in verify_log.FIELDS}
        obj["hash"] = verify_log.chain_hash(entry["prev_hash"], verify_log.canonical(entry))
        lines[1] = verify_log.canonical(obj)
        self.assert_fails(lines, "log_gap", 3)

    def test_non_canonical_whitespace_is_log_corrupt(self):
        lines = vector_lines()
        lines[0] = lines[0].replace('{"agent"', '{ "agent"', 1)
        self.assert_fails(lines, "log_corrupt", 1)

    def test_float_is_log_corrupt(self):
        lines = vector_lines()
        lines[0] = lines[0].replace('"time_ms":1700000000000', '"time_ms":1700000000000.0', 1)
        self.assert_fails(lines, "log_corrupt", 1)

    def test_unknown_field_is_log_corrupt(self):
        lines = vector_lines()
        lines[0] = lines[0].replace('{"agent"', '{"aaa":1,"agent"', 1)
        self.assert_fails(lines, "log_corrupt", 1)


@unittest.skipUnless(os.environ.get("CUSTOS_BIN"), "needs the custos binary ($CUSTOS_BIN)")
class KernelExportTest(unittest.TestCase):
    def test_demo_log_exported_by_the_kernel_verifies_here(self):
        with tempfile.TemporaryDirectory() as d:
            custos = os.environ["CUSTOS_BIN"]
            demo = subprocess.run([custos, "--data-dir", d, "demo"], capture_output=True,
                                  text=True, timeout=120)
            self.assertEqual(demo.returncode, 0, demo.stdout + demo.stderr)
            out = os.path.join(d, "log.jsonl")
            exp = subprocess.run([custos, "--data-dir", os.path.join(d, "data"), "audit",
                                  "export", "--out", out], capture_output=True, text=True)
            self.assertEqual(exp.returncode, 0, exp.stderr)
            with open(out, encoding="utf-8") as f:
                text = f.read()
            count, head = verify_log.verify_jsonl(text)
            self.assertGreater(count, 10)
            cpp = subprocess.run([custos, "audit", "verify", "--jsonl", out], capture_output=True,
                                 text=True)
            self.assertIn(head, cpp.stdout)
            # And a tampered copy fails in both verifiers.
            tampered = text.replace('"verdict":"deny"', '"verdict":"allow"', 1)
            with self.assertRaises(verify_log.VerifyError):
                verify_log.verify_jsonl(tampered)


if __name__ == "__main__":
    unittest.main()

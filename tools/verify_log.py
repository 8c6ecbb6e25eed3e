#!/usr/bin/python3
"""Independent verifier of a Custos flight log, written from docs/spec/flight-log.md alone.

It shares no code with the C++ implementation: canonical JSON (spec section 2), the hash chain
(section 3), the JSONL export (section 5) and verification (section 6) are re-implemented here
with the Python standard library.

Usage:
  verify_log.py LOG.jsonl            verify an exported log (`custos audit export`)
  verify_log.py --vectors FILE.json  check the spec's test vectors

Exit status: 0 verified; 1 verification failed (the reason code and first bad seq are printed);
2 usage or I/O error.
"""
import hashlib
import json
import sys

GENESIS = "0" * 64
FIELDS = sorted([
    "v", "seq", "prev_hash", "time_ms", "type", "agent", "run", "syscall_id", "syscall", "target",
    "verdict", "stage", "rule", "reason", "explanation", "labels", "req_hash", "res_hash", "blob",
    "decision_seq", "policy_hash", "usage", "extra",
])
INT_FIELDS = {"v", "seq", "time_ms", "decision_seq"}
LIST_FIELDS = {"labels"}
OBJECT_FIELDS = {"usage", "extra"}
MAX_DEPTH = 16
_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r",
            "\t": "\\t"}


class VerifyError(Exception):
    def __init__(self, reason, seq, message):
        super().__init__(f"{reason} at seq {seq}: {message}")
        self.reason = reason
        self.seq = seq


def encode_string(s):
    out = ['"']
    for ch in s:
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif ord(ch) < 0x20:
            out.append("\\u%04x" % ord(ch))
        elif 0xD800 <= ord(ch) <= 0xDFFF:
            raise ValueError("lone surrogate in string")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def canonical(value, depth=0):
    """Spec section 2: sorted keys, no whitespace, integers only, minimal escapes."""
    if depth > MAX_DEPTH + 1:
        raise ValueError("nesting too deep")
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        raise ValueError("floats are not canonical")
    if isinstance(value, str):
        return encode_string(value)
    if isinstance(value, list):
        return "[" + ",".join(canonical(v, depth + 1) for v in value) + "]"
    if isinstance(value, dict):
        keys = sorted(value.keys(), key=lambda k: k.encode("utf-8"))
        return "{" + ",".join(encode_string(k) + ":" + canonical(value[k], depth + 1)
                              for k in keys) + "}"
    raise ValueError(f"unsupported JSON value {type(value).__name__}")


def chain_hash(prev_hash, canonical_text):
    return hashlib.sha256(bytes.fromhex(prev_hash) + canonical_text.encode("utf-8")).hexdigest()


def _reject_duplicates(pairs):
    obj = {}
    for k, v in pairs:
        if k in obj:
            raise ValueError(f"duplicate key {k!r}")
        obj[k] = v
    return obj


def _no_floats(text):
    raise ValueError(f"float {text} is not canonical")


def parse_line(line, seq):
    """Parses one export line and checks it has exactly the canonical shape of sections 2 and 5."""
    try:
        obj = json.loads(line, object_pairs_hook=_reject_duplicates, parse_float=_no_floats,
                         parse_constant=_no_floats)
    except ValueError as e:
        raise VerifyError("log_corrupt", seq, f"not canonical JSON: {e}")
    if not isinstance(obj, dict):
        raise VerifyError("log_corrupt", seq, "an entry is a JSON object")
    expected = set(FIELDS) | {"hash"}
    if set(obj.keys()) != expected:
        missing = sorted(expected - set(obj.keys()))
        extra = sorted(set(obj.keys()) - expected)
        raise VerifyError("log_corrupt", seq, f"fields differ: missing {missing}, unknown {extra}")
    for k in FIELDS:
        v = obj[k]
        ok = (isinstance(v, int) and not isinstance(v, bool)) if k in INT_FIELDS else \
            isinstance(v, list) if k in LIST_FIELDS else \
            isinstance(v, dict) if k in OBJECT_FIELDS else isinstance(v, str)
        if not ok:
            raise VerifyError("log_corrupt", seq, f"field {k} has the wrong type")
    h = obj["hash"]
    if not (isinstance(h, str) and len(h) == 64 and all(c in "0123456789abcdef" for c in h)):
        raise VerifyError("log_corrupt", seq, "hash is not 64 lowercase hex digits")
    entry = {k: obj[k] for k in FIELDS}
    try:
        text = canonical(entry)
    except ValueError as e:
        raise VerifyError("log_corrupt", seq, str(e))
    # Section 5: the line is the canonical bytes with "hash" inserted in sorted position.
    if canonical(obj) != line:
        raise VerifyError("log_corrupt", seq, "line is not in canonical form")
    return entry, text, h


def verify_lines(lines):
    """Section 6. Returns (entries verified, head hash); raises VerifyError on the first problem."""
    prev = GENESIS
    count = 0
    for k, line in enumerate(lines, start=1):
        entry, text, h = parse_line(line, k)
        if entry["seq"] != k:
            raise VerifyError("log_gap", k, f"expected seq {k}, found {entry['seq']} "
                              f"({'missing or reordered' if entry['seq'] > k else 'inserted or reordered'})")
        if chain_hash(entry["prev_hash"], text) != h:
            raise VerifyError("log_corrupt", k, "hash does not match the entry's bytes (changed)")
        if entry["prev_hash"] != prev:
            raise VerifyError("log_gap", k, "prev_hash is not the previous entry's hash")
        prev = h
        count += 1
    return count, prev


def verify_jsonl(text):
    if text.endswith("\n"):
        text = text[:-1]
    if "\r" in text:
        raise VerifyError("log_corrupt", 0, "carriage return in export")
    lines = text.split("\n") if text else []
    return verify_lines(lines)


def check_vectors(doc):
    """Section 7: every vector's canonical text, chain, hash and JSONL line."""
    prev = doc.get("genesis_hash", GENESIS)
    if prev != GENESIS:
        raise VerifyError("log_corrupt", 0, "genesis hash differs from the spec")
    lines = []
    for i, e in enumerate(doc["entries"], start=1):
        text = canonical(e["fields"])
        if text != e["canonical"]:
            raise VerifyError("log_corrupt", i, "canonical encoding differs")
        if e["fields"]["prev_hash"] != prev or e["fields"]["seq"] != i:
            raise VerifyError("log_gap", i, "vector chain is broken")
        if chain_hash(prev, text) != e["hash"]:
            raise VerifyError("log_corrupt", i, "hash differs")
        with_hash = dict(e["fields"])
        with_hash["hash"] = e["hash"]
        if canonical(with_hash) != e["jsonl"]:
            raise VerifyError("log_corrupt", i, "jsonl line differs")
        lines.append(e["jsonl"])
        prev = e["hash"]
    return verify_lines(lines)


def main(argv):
    if len(argv) == 3 and argv[1] == "--vectors":
        path, mode = argv[2], "vectors"
    elif len(argv) == 2 and not argv[1].startswith("-"):
        path, mode = argv[1], "jsonl"
    else:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    try:
        with open(path, "rb") as f:
            raw = f.read()
        text = raw.decode("utf-8")
    except (OSError, UnicodeDecodeError) as e:
        print(f"verify_log: cannot read {path}: {e}", file=sys.stderr)
        return 2
    try:
        if mode == "vectors":
            count, head = check_vectors(json.loads(text))
        else:
            count, head = verify_jsonl(text)
    except VerifyError as e:
        print(f"FAILED {e.reason} at seq {e.seq}: {e}")
        return 1
    print(f"verified: {count} entries, head {head}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

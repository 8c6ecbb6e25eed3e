#!/usr/bin/python3
"""Independent verifier of a Custos flight log, written from docs/spec/flight-log.md and
docs/spec/checkpoint.md alone.

It shares no code with the C++ implementation: canonical JSON (spec section 2), the hash chain
(section 3), the JSONL export (section 5) and verification (section 6) are re-implemented here
with the Python standard library; Merkle hashing, inclusion and consistency proofs (RFC 9162) and
C2SP checkpoint notes (checkpoint.md) too, with Debian's python3-nacl for Ed25519.

Usage:
  verify_log.py LOG.jsonl                        verify an exported log (`custos audit export`)
  verify_log.py --vectors FILE.json              check the flight-log test vectors
  verify_log.py --merkle-vectors FILE.json       check the Merkle / checkpoint test vectors
  verify_log.py --root LOG.jsonl                 verify the log, print its Merkle tree size + root
  verify_log.py --checkpoint NOTE --key VKEY [--log LOG.jsonl]
                                                 verify a checkpoint note signed by VKEY
                                                 (name+hash+base64 key); with --log, also that
                                                 the log's first `size` entries have its root
  verify_log.py --proof PROOF.json --key VKEY    verify `custos audit prove` / `consistency` output

Exit status: 0 verified; 1 verification failed (the reason code and first bad seq are printed);
2 usage or I/O error.
"""
import base64
import binascii
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


# ---- Merkle tree (RFC 9162; checkpoint.md section 1) ----

class ProofError(Exception):
    """A proof, checkpoint or key that does not verify; `reason` is the spec's reason code."""

    def __init__(self, reason, message):
        super().__init__(f"{reason}: {message}")
        self.reason = reason


MAX_PROOF_HASHES = 128


def leaf_hash(canonical_text):
    data = canonical_text.encode("utf-8") if isinstance(canonical_text, str) else canonical_text
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left, right):
    return hashlib.sha256(b"\x01" + left + right).digest()


def merkle_root(leaves):
    """MTH of a list of leaf hashes (RFC 9162 section 2.1.1)."""
    n = len(leaves)
    if n == 0:
        return hashlib.sha256(b"").digest()
    if n == 1:
        return leaves[0]
    k = 1
    while k * 2 < n:
        k *= 2
    return node_hash(merkle_root(leaves[:k]), merkle_root(leaves[k:]))


def _check_hashes(proof):
    if not isinstance(proof, list) or len(proof) > MAX_PROOF_HASHES:
        raise ProofError("invalid_argument", "a proof is a list of at most 128 hashes")
    for h in proof:
        if not isinstance(h, bytes) or len(h) != 32:
            raise ProofError("invalid_argument", "a proof hash is 32 bytes")


def verify_inclusion(index, size, leaf, proof, root):
    """RFC 9162 section 2.1.3.2; raises ProofError."""
    _check_hashes(proof)
    if not 0 <= index < size:
        raise ProofError("invalid_argument",
                         f"leaf index {index} is beyond the tree of size {size}")
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            raise ProofError("invalid_argument", "inclusion proof is too long")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("invalid_argument", "inclusion proof is too short")
    if r != root:
        raise ProofError("log_corrupt",
                         f"inclusion proof for leaf {index} does not lead to the root")


def verify_consistency(m, n, proof, old_root, new_root):
    """RFC 9162 section 2.1.4.2 (plus m == n: empty proof, equal roots); raises ProofError."""
    _check_hashes(proof)
    if not 0 < m <= n:
        raise ProofError("invalid_argument", f"consistency proof needs 0 < m <= n, got {m}, {n}")
    if m == n:
        if proof:
            raise ProofError("invalid_argument", "consistency proof between equal sizes is empty")
        if old_root != new_root:
            raise ProofError("log_corrupt", "trees of equal size have different roots")
        return
    if not proof:
        raise ProofError("invalid_argument", "consistency proof is empty")
    path = ([old_root] if m & (m - 1) == 0 else []) + list(proof)
    fn, sn = m - 1, n - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise ProofError("invalid_argument", "consistency proof is too long")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("invalid_argument", "consistency proof is too short")
    if fr != old_root:
        raise ProofError("log_corrupt", "consistency proof does not lead to the old root")
    if sr != new_root:
        raise ProofError("log_corrupt", "consistency proof does not lead to the new root")


def jsonl_leaf_hashes(text):
    """Verifies the chain of an exported log (section 6) and returns its Merkle leaf hashes."""
    if text.endswith("\n"):
        text = text[:-1]
    lines = text.split("\n") if text else []
    verify_lines(lines)
    return [leaf_hash(parse_line(line, k)[1]) for k, line in enumerate(lines, start=1)]


# ---- Checkpoints: C2SP signed notes (checkpoint.md sections 3-4) ----

EM_DASH = "\u2014 "
MAX_NOTE_BYTES = 1 << 20
MAX_SIGNATURES = 100


def _b64(text, what):
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raise ProofError("invalid_argument", f"{what} is not base64")
    if base64.b64encode(raw).decode("ascii") != text:
        raise ProofError("invalid_argument", f"{what} is not canonical base64")
    return raw


def _check_name(name):
    if not name or any(c.isspace() or c == "+" or ord(c) < 0x20 or ord(c) == 0x7f for c in name):
        raise ProofError("invalid_argument", f"bad key name {name!r}")


def key_hash(name, public_key):
    return hashlib.sha256(name.encode("utf-8") + b"\n\x01" + public_key).digest()[:4]


def parse_vkey(vkey):
    """'<name>+<hex key hash>+<base64(0x01 || public key)>' -> (name, key hash, public key)."""
    parts = vkey.strip().split("+", 2)
    if len(parts) != 3:
        raise ProofError("invalid_argument", "verifier key is not <name>+<hash>+<key>")
    name, hash_hex, key_b64 = parts
    _check_name(name)
    try:
        kh = bytes.fromhex(hash_hex)
    except ValueError:
        kh = b""
    if len(kh) != 4 or hash_hex != hash_hex.lower():
        raise ProofError("invalid_argument", "verifier key hash is not 8 lowercase hex digits")
    typed = _b64(key_b64, "verifier key")
    if len(typed) != 33 or typed[0] != 1:
        raise ProofError("key_error", "verifier key is not an Ed25519 (type 0x01) key")
    if key_hash(name, typed[1:]) != kh:
        raise ProofError("key_error", "verifier key hash does not match its name and key")
    return name, kh, typed[1:]


def parse_note(note):
    """Splits a signed note into (text, [(name, key hash, signature bytes)])."""
    if isinstance(note, bytes):
        try:
            note = note.decode("utf-8")
        except UnicodeDecodeError:
            raise ProofError("invalid_utf8", "note is not UTF-8")
    if len(note.encode("utf-8")) > MAX_NOTE_BYTES:
        raise ProofError("invalid_argument", "note is over the size cap")
    split = note.rfind("\n\n")
    if split < 0:
        raise ProofError("invalid_argument", "note has no blank line before its signatures")
    text, sigs = note[:split + 1], note[split + 2:]
    if any(ord(c) < 0x20 and c != "\n" for c in text):
        raise ProofError("invalid_argument", "note text contains a control character")
    if not sigs or not sigs.endswith("\n"):
        raise ProofError("invalid_argument", "note's signature lines are missing or truncated")
    out = []
    for i, line in enumerate(sigs[:-1].split("\n"), start=1):
        if len(out) == MAX_SIGNATURES:
            raise ProofError("invalid_argument", "note has more than 100 signatures")
        if not line.startswith(EM_DASH):
            raise ProofError("invalid_argument",
                             f"signature line {i} does not start with an em dash")
        fields = line[len(EM_DASH):].split(" ")
        if len(fields) != 2:
            raise ProofError("invalid_argument", f"signature line {i} is not '— <name> <base64>'")
        _check_name(fields[0])
        raw = _b64(fields[1], f"signature line {i}")
        if len(raw) < 5:
            raise ProofError("invalid_argument", f"signature line {i} is shorter than a key hash")
        out.append((fields[0], raw[:4], raw[4:]))
    return text, out


def parse_checkpoint_body(text):
    """C2SP tlog-checkpoint body -> (origin, size, root bytes, extension lines)."""
    if not text.endswith("\n"):
        raise ProofError("invalid_argument", "checkpoint body must end with a newline")
    lines = text[:-1].split("\n")
    if len(lines) < 3:
        raise ProofError("invalid_argument", "checkpoint body needs origin, size and root hash")
    origin, size_text, root_text = lines[:3]
    if not origin or any(ord(c) < 0x20 or ord(c) == 0x7f for c in origin):
        raise ProofError("invalid_argument", "bad checkpoint origin")
    if (not size_text.isascii() or not size_text.isdigit() or len(size_text) > 20 or
            (len(size_text) > 1 and size_text[0] == "0") or int(size_text) >= 1 << 64):
        raise ProofError("invalid_argument", "checkpoint tree size is not a decimal uint64")
    root = _b64(root_text, "checkpoint root hash")
    if len(root) != 32:
        raise ProofError("invalid_argument", "checkpoint root hash is not 32 bytes")
    for e in lines[3:]:
        if not e:
            raise ProofError("invalid_argument", "empty checkpoint extension line")
    return origin, int(size_text), root, lines[3:]


def verify_note(note, vkeys, required=()):
    """Verifies every signature by a known key (Ed25519 via python3-nacl); returns
    (text, verified names, unknown names). A bad known signature is token_invalid; no trusted
    signature, or a missing required one, is key_error."""
    import nacl.exceptions
    import nacl.signing
    known = {}
    for vkey in vkeys:
        name, kh, pub = parse_vkey(vkey)
        known[(name, kh)] = pub
    text, sigs = parse_note(note)
    verified, unknown = [], []
    for name, kh, sig in sigs:
        pub = known.get((name, kh))
        if pub is None:
            unknown.append(name)
            continue
        if len(sig) != 64:
            raise ProofError("token_invalid", f"signature by {name} is not 64 bytes")
        try:
            nacl.signing.VerifyKey(pub).verify(text.encode("utf-8"), sig)
        except nacl.exceptions.BadSignatureError:
            raise ProofError("token_invalid", f"signature by {name} does not verify")
        if name not in verified:
            verified.append(name)
    if not verified:
        raise ProofError("key_error", "note is signed by no trusted key")
    for r in required:
        if r not in verified:
            raise ProofError("key_error", f"note lacks a signature by required key {r}")
    return text, verified, unknown


def verify_checkpoint(note, vkey):
    """A checkpoint signed by `vkey` whose origin is that key's name -> (origin, size, root)."""
    name = parse_vkey(vkey)[0]
    text, _, _ = verify_note(note, [vkey], required=[name])
    origin, size, root, _ = parse_checkpoint_body(text)
    if origin != name:
        raise ProofError("key_error", f"checkpoint origin {origin} is not the key's name {name}")
    return origin, size, root


def _hex32(h):
    try:
        b = bytes.fromhex(h)
    except (TypeError, ValueError):
        b = b""
    if len(b) != 32 or h != h.lower():
        raise ProofError("invalid_argument", "a hash is not 64 lowercase hex digits")
    return b


def verify_proof_doc(doc, vkey):
    """Verifies the JSON printed by `custos audit prove` or `custos audit consistency`."""
    _, size, root = verify_checkpoint(doc["checkpoint"], vkey)
    proof = [_hex32(h) for h in doc["proof"]]
    if doc.get("type") == "inclusion":
        if doc["tree_size"] != size or _hex32(doc["root"]) != root:
            raise ProofError("log_corrupt", "proof is not for the checkpoint's tree")
        leaf = leaf_hash(doc["canonical"])
        if leaf != _hex32(doc["leaf_hash"]):
            raise ProofError("log_corrupt", "leaf hash does not match the entry")
        if doc["leaf_index"] != doc["seq"] - 1:
            raise ProofError("invalid_argument", "leaf_index is not seq - 1")
        verify_inclusion(doc["leaf_index"], size, leaf, proof, root)
    elif doc.get("type") == "consistency":
        if doc["new_size"] != size or _hex32(doc["new_root"]) != root:
            raise ProofError("log_corrupt", "proof is not for the checkpoint's tree")
        if doc["old_size"] == 0:
            if proof or _hex32(doc["old_root"]) != hashlib.sha256(b"").digest():
                raise ProofError("log_corrupt", "the empty tree's root or proof is wrong")
        else:
            verify_consistency(doc["old_size"], size, proof, _hex32(doc["old_root"]), root)
    else:
        raise ProofError("invalid_argument", "unknown proof type")
    return size, root


def check_merkle_vectors(doc):
    """checkpoint.md section 6: every root, proof and the checkpoint notes."""
    leaves = []
    for i, leaf in enumerate(doc["leaves"]):
        h = leaf_hash(leaf["input"])
        if h.hex() != leaf["leaf_hash"]:
            raise ProofError("log_corrupt", f"leaf {i} hash differs")
        leaves.append(h)
    roots = []
    for r in doc["roots"]:
        got = merkle_root(leaves[:r["size"]])
        if got.hex() != r["root"]:
            raise ProofError("log_corrupt", f"root of size {r['size']} differs")
        roots.append(got)
    for p in doc["inclusion"]:
        i, s = p["leaf_index"], p["tree_size"]
        verify_inclusion(i, s, leaves[i], [_hex32(h) for h in p["proof"]], roots[s])
    for p in doc["consistency"]:
        m, s = p["old_size"], p["new_size"]
        verify_consistency(m, s, [_hex32(h) for h in p["proof"]], roots[m], roots[s])
    c = doc["checkpoint"]
    log_vkey, witness_vkey = doc["log_key"]["verifier_key"], doc["witness_key"]["verifier_key"]
    for key in (doc["log_key"], doc["witness_key"]):
        name, kh, pub = parse_vkey(key["verifier_key"])
        if name != key["name"] or kh.hex() != key["key_hash"] or pub.hex() != key["public"]:
            raise ProofError("key_error", f"verifier key of {name} differs from its fields")
    origin, size, root = verify_checkpoint(c["note"], log_vkey)
    if (origin, size, root.hex()) != (c["origin"], c["size"], c["root"]) or root != roots[size]:
        raise ProofError("log_corrupt", "checkpoint does not match the vectors' tree")
    _, verified, _ = verify_note(c["cosigned_note"], [log_vkey, witness_vkey])
    if len(verified) != 2:
        raise ProofError("key_error", "cosigned note lacks a signature")
    return len(leaves), root


def main(argv):
    args = argv[1:]
    opts = {}
    while args and args[0].startswith("--"):
        if len(args) < 2:
            print(__doc__.strip(), file=sys.stderr)
            return 2
        opts[args[0]] = args[1]
        args = args[2:]
    modes = [m for m in ("--vectors", "--merkle-vectors", "--root", "--checkpoint", "--proof")
             if m in opts]
    if len(args) == 1 and not opts:
        path, mode = args[0], "jsonl"
    elif not args and len(modes) == 1:
        mode = modes[0]
        path = opts[mode]
    else:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    if mode in ("--checkpoint", "--proof") and "--key" not in opts:
        print("verify_log: --checkpoint and --proof need --key", file=sys.stderr)
        return 2

    def read(p):
        with open(p, "rb") as f:
            return f.read().decode("utf-8")
    try:
        text = read(path)
        log_text = read(opts["--log"]) if "--log" in opts else None
    except (OSError, UnicodeDecodeError) as e:
        print(f"verify_log: cannot read: {e}", file=sys.stderr)
        return 2
    try:
        if mode == "--vectors":
            count, head = check_vectors(json.loads(text))
        elif mode == "jsonl":
            count, head = verify_jsonl(text)
        elif mode == "--merkle-vectors":
            count, root = check_merkle_vectors(json.loads(text))
            print(f"verified: merkle/checkpoint vectors, {count} leaves, root {root.hex()}")
            return 0
        elif mode == "--root":
            leaves = jsonl_leaf_hashes(text)
            root = merkle_root(leaves)
            print(f"verified: {len(leaves)} entries, merkle root {root.hex()} "
                  f"({base64.b64encode(root).decode()})")
            return 0
        elif mode == "--checkpoint":
            origin, size, root = verify_checkpoint(text, opts["--key"])
            if log_text is not None:
                leaves = jsonl_leaf_hashes(log_text)
                if size > len(leaves):
                    raise ProofError("log_gap", f"checkpoint covers {size} entries, the log has "
                                     f"{len(leaves)}")
                if merkle_root(leaves[:size]) != root:
                    raise ProofError("log_corrupt", "the log does not match the checkpoint root")
            print(f"verified: checkpoint {origin} size {size} root {root.hex()}")
            return 0
        else:
            size, root = verify_proof_doc(json.loads(text), opts["--key"])
            print(f"verified: proof against checkpoint of size {size}, root {root.hex()}")
            return 0
    except VerifyError as e:
        print(f"FAILED {e.reason} at seq {e.seq}: {e}")
        return 1
    except ProofError as e:
        print(f"FAILED {e}")
        return 1
    except (ValueError, KeyError, TypeError) as e:
        print(f"FAILED invalid_argument: malformed input: {e!r}")
        return 1
    print(f"verified: {count} entries, head {head}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

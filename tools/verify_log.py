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
  verify_log.py --rotation-vectors FILE.json     check the key rotation test vectors
  verify_log.py --log LOG.jsonl --trusted-keys FILE NOTE...
                                                 verify a log across key rotations and each
                                                 checkpoint NOTE against the key current at its
                                                 size; FILE pins every key (one verifier key a line)

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


# ---- Key rotation (flight-log.md section 10) ----

ROTATION_EVENT = "identity.rotate"
ROTATION_PREFIX = b"custos/v1/key_rotation\x00"
STATEMENT_KEYS = {"origin", "tree_size", "root", "old_key", "old_key_id", "new_key", "new_key_id"}
SIGNATURE_KEYS = {"old_signature", "new_signature"}


def key_id(public_key):
    return hashlib.sha256(public_key).digest()[:8].hex()


def key_name(public_key):
    return "custos/" + key_id(public_key)


def _lower_hex(value, nbytes):
    if (not isinstance(value, str) or len(value) != 2 * nbytes or
            any(c not in "0123456789abcdef" for c in value)):
        return None
    return bytes.fromhex(value)


def open_rotation(entry):
    """Section 10.1-10.2: parses the statement of an identity.rotate event and verifies both
    signatures. Returns a dict; raises VerifyError(rotation_invalid) naming the entry's seq."""
    import nacl.exceptions
    import nacl.signing
    seq = entry["seq"]

    def bad(msg):
        return VerifyError("rotation_invalid", seq, f"key rotation statement: {msg}")
    x = entry["extra"]
    if set(x.keys()) != STATEMENT_KEYS | SIGNATURE_KEYS:
        raise bad(f"extra must hold exactly {sorted(STATEMENT_KEYS | SIGNATURE_KEYS)}")
    if not isinstance(x["origin"], str) or not x["origin"]:
        raise bad("origin is not a non-empty string")
    if not isinstance(x["tree_size"], int) or isinstance(x["tree_size"], bool) or \
            x["tree_size"] < 0:
        raise bad("tree_size is not a non-negative integer")
    root = _lower_hex(x["root"], 32)
    old, new = _lower_hex(x["old_key"], 32), _lower_hex(x["new_key"], 32)
    old_sig, new_sig = _lower_hex(x["old_signature"], 64), _lower_hex(x["new_signature"], 64)
    if root is None or old is None or new is None or old_sig is None or new_sig is None:
        raise bad("root, keys and signatures must be lowercase hex of 32, 32 and 64 bytes")
    if old == new:
        raise bad("old_key and new_key are the same key")
    if x["old_key_id"] != key_id(old) or x["new_key_id"] != key_id(new):
        raise bad("old_key_id / new_key_id are not the ids of old_key / new_key")
    message = ROTATION_PREFIX + canonical({k: x[k] for k in STATEMENT_KEYS}).encode("utf-8")
    for which, pub, sig in (("old", old, old_sig), ("new", new, new_sig)):
        try:
            nacl.signing.VerifyKey(pub).verify(message, sig)
        except (nacl.exceptions.BadSignatureError, nacl.exceptions.ValueError, ValueError):
            raise bad(f"the signature by the {which} key {key_name(pub)} does not verify")
    return {"seq": seq, "origin": x["origin"], "tree_size": x["tree_size"], "root": root,
            "old": old, "new": new}


def _signed_by(text_sigs, name, public_key):
    """True if a signature line by (name, key hash) verifies; token_invalid if it is bad."""
    import nacl.exceptions
    import nacl.signing
    text, sigs = text_sigs
    kh = key_hash(name, public_key)
    found = False
    for n, h, sig in sigs:
        if n != name or h != kh:
            continue
        if len(sig) != 64:
            raise ProofError("token_invalid", f"signature by {name} is not 64 bytes")
        try:
            nacl.signing.VerifyKey(public_key).verify(text.encode("utf-8"), sig)
        except nacl.exceptions.BadSignatureError:
            raise ProofError("token_invalid", f"signature by {name} does not verify")
        found = True
    return found


def verify_rotating_log(log_text, notes, trusted_vkeys=()):
    """Verifies an exported log and its checkpoint notes across key rotations (flight-log.md
    section 10.3): the chain (section 6), every rotation statement (signatures, tree, origin,
    chain of keys), and every checkpoint's root and signer (the key current at its size). With
    trusted verifier keys, every key of the chain must be one of them. Returns (entries, list of
    rotation seqs); raises VerifyError(reason, seq) at the first problem (for a checkpoint, seq is
    its tree size)."""
    if log_text.endswith("\n"):
        log_text = log_text[:-1]
    lines = log_text.split("\n") if log_text else []
    verify_lines(lines)
    entries = [parse_line(line, k) for k, line in enumerate(lines, start=1)]
    leaves = [leaf_hash(text) for _, text, _ in entries]
    trusted = {}
    for vkey in trusted_vkeys:
        name, _, pub = parse_vkey(vkey)
        trusted[name] = pub
    cps = []
    for note in notes:
        text, sigs = parse_note(note)
        origin, size, root, _ = parse_checkpoint_body(text)
        cps.append({"size": size, "root": root, "origin": origin, "parsed": (text, sigs),
                    "note": note})
    cps.sort(key=lambda c: c["size"])
    log_origin = cps[0]["origin"] if cps else None
    chain = []        # verified statements, in seq order
    pending = []      # checkpoints checked before the first key is known

    def current_at(size):
        key = None
        for r in chain:
            if r["seq"] <= size:
                key = r["new"]
        return key if key is not None else chain[0]["old"]

    def check_signer(c, key):
        name = key_name(key)
        try:
            if trusted and trusted.get(name) != key:
                raise VerifyError("key_error", c["size"],
                                  f"the key current at size {c['size']}, {name}, is not trusted")
            if not _signed_by(c["parsed"], name, key):
                raise VerifyError("checkpoint_wrong_signer", c["size"],
                                  f"checkpoint of size {c['size']} is not signed by {name}, "
                                  "the key current at that size")
        except ProofError as e:
            raise VerifyError(e.reason, c["size"], str(e))

    def check_checkpoints_at(size, i):
        while i < len(cps) and cps[i]["size"] <= size:
            c = cps[i]
            if merkle_root(leaves[:size]) != c["root"]:
                raise VerifyError("log_corrupt", size, "checkpoint root is not the log's")
            if chain:
                check_signer(c, current_at(size))
            else:
                pending.append(c)
            i += 1
        return i

    nxt = check_checkpoints_at(0, 0)
    for seq, (entry, _, _) in enumerate(entries, start=1):
        if entry["type"] == "event" and entry["syscall"] == ROTATION_EVENT:
            r = open_rotation(entry)
            if r["tree_size"] != seq - 1 or r["root"] != merkle_root(leaves[:seq - 1]):
                raise VerifyError("rotation_invalid", seq,
                                  "statement does not name the tree of the entries before it")
            if log_origin is not None and r["origin"] != log_origin:
                raise VerifyError("rotation_invalid", seq, "statement names another origin")
            if chain and chain[-1]["new"] != r["old"]:
                raise VerifyError("rotation_invalid", seq, "its old key is not the current key")
            if trusted:
                for k in (r["old"], r["new"]):
                    if trusted.get(key_name(k)) != k:
                        raise VerifyError("key_error", seq, f"key {key_name(k)} is not trusted")
            first = not chain
            chain.append(r)
            if first:
                for c in pending:
                    check_signer(c, r["old"])
                pending.clear()
        nxt = check_checkpoints_at(seq, nxt)
    if nxt < len(cps):
        raise VerifyError("log_gap", len(entries) + 1,
                          f"a checkpoint covers {cps[nxt]['size']} entries, the log has "
                          f"{len(entries)}")
    for c in pending:  # a log that never rotated: any trusted key
        if trusted:
            try:
                verify_note(c["note"], list(trusted_vkeys))
            except ProofError as e:
                raise VerifyError(e.reason, c["size"], str(e))
    return len(entries), [r["seq"] for r in chain]


def check_rotation_vectors(doc):
    """flight-log.md section 10.4: the genuine variant verifies, each other fails with its
    reason at its seq. Returns the number of variants checked."""
    for key in doc["keys"]:
        name, _, pub = parse_vkey(key["verifier_key"])
        if (name, pub.hex(), key_id(pub)) != (key["name"], key["public"], key["key_id"]):
            raise ProofError("key_error", f"verifier key of {name} differs from its fields")
    for v in doc["variants"]:
        try:
            verify_rotating_log(v["log"], v["checkpoints"], v["trusted_keys"])
            got = ("", 0)
        except VerifyError as e:
            got = (e.reason, e.seq)
        want = (v["reason"], v["seq"])
        if got != want:
            raise ProofError("log_corrupt", f"variant {v['name']}: expected {want}, got {got}")
    return len(doc["variants"])


def main(argv):
    args = argv[1:]
    opts = {}
    while args and args[0].startswith("--"):
        if len(args) < 2:
            print(__doc__.strip(), file=sys.stderr)
            return 2
        opts[args[0]] = args[1]
        args = args[2:]
    if "--trusted-keys" in opts and "--log" in opts and "--checkpoint" not in opts:
        # verify_log.py --log LOG.jsonl --trusted-keys FILE NOTE...: a log spanning rotations.
        try:
            log_text = open(opts["--log"], "rb").read().decode("utf-8")
            vkeys = [ln.strip() for ln in open(opts["--trusted-keys"], encoding="utf-8")
                     if ln.strip() and not ln.strip().startswith("#")]
            notes = [open(p, "rb").read().decode("utf-8") for p in args]
        except (OSError, UnicodeDecodeError) as e:
            print(f"verify_log: cannot read: {e}", file=sys.stderr)
            return 2
        try:
            count, rotations = verify_rotating_log(log_text, notes, vkeys)
        except VerifyError as e:
            print(f"FAILED {e.reason} at seq {e.seq}: {e}")
            return 1
        except ProofError as e:
            print(f"FAILED {e}")
            return 1
        except (ValueError, KeyError, TypeError) as e:
            print(f"FAILED invalid_argument: malformed input: {e!r}")
            return 1
        print(f"verified: {count} entries, {len(notes)} checkpoints, key rotations at {rotations}")
        return 0
    modes = [m for m in ("--vectors", "--merkle-vectors", "--rotation-vectors", "--root",
                         "--checkpoint", "--proof") if m in opts]
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
        elif mode == "--rotation-vectors":
            n = check_rotation_vectors(json.loads(text))
            print(f"verified: key rotation vectors, {n} variants each with its expected result")
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

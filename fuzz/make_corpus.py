#!/usr/bin/python3
"""Builds the libFuzzer seed corpora from files already in the repository (stdlib only).

  token_fuzz           every official Biscuit sample token (prefixed 0x00: whole-token path)
  datalog_parser_fuzz  every block's Datalog text and authorizer code in the samples
  log_reader_fuzz      the flight-log chain vectors as a JSONL export, whole and line by line
  checkpoint_fuzz      the checkpoint vectors: body, signed and cosigned notes, verifier keys
  (every target)       fuzz/regressions/<target>/*: inputs that once failed, kept as seeds

Usage: make_corpus.py SOURCE_DIR OUT_DIR
"""
import hashlib
import json
import pathlib
import sys


def put(out: pathlib.Path, data: bytes) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / hashlib.sha1(data).hexdigest()).write_bytes(data)


def main() -> int:
    src, out = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
    samples_dir = src / "tests/caps/testdata/biscuit-samples"
    samples = json.loads((samples_dir / "samples.json").read_text())
    for case in samples["testcases"]:
        put(out / "token_fuzz", b"\x00" + (samples_dir / case["filename"]).read_bytes())
        for block in case["token"]:
            put(out / "datalog_parser_fuzz", block["code"].encode())
        for validation in case.get("validations", {}).values():
            code = validation.get("authorizer_code")
            if code:
                put(out / "datalog_parser_fuzz", code.encode())

    chain = json.loads((src / "docs/spec/vectors/flight-log-chain.json").read_text())
    lines = [e["jsonl"].encode() for e in chain["entries"]]
    put(out / "log_reader_fuzz", b"\n".join(lines) + b"\n")
    for e in chain["entries"]:
        put(out / "log_reader_fuzz", e["canonical"].encode())

    merkle = json.loads((src / "docs/spec/vectors/merkle-checkpoint.json").read_text())
    for key in ("body", "note", "cosigned_note"):
        if key in merkle["checkpoint"]:
            put(out / "checkpoint_fuzz", merkle["checkpoint"][key].encode())
    for key in ("log_key", "witness_key"):
        if "verifier_key" in merkle[key]:
            put(out / "checkpoint_fuzz", merkle[key]["verifier_key"].encode())

    regressions = src / "fuzz/regressions"
    if regressions.is_dir():
        for target in regressions.iterdir():
            for f in target.iterdir():
                put(out / target.name, f.read_bytes())
    return 0


if __name__ == "__main__":
    sys.exit(main())

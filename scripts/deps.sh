#!/usr/bin/env bash
# Installs the Debian 12 packages Custos builds, tests and benchmarks with. Idempotent: does
# nothing when everything is present. Needs root (or sudo) only when something is missing.
set -euo pipefail
PKGS=(build-essential cmake ninja-build pkg-config clang-format
  libsodium-dev libssl-dev nlohmann-json3-dev libtomlplusplus-dev libsqlite3-dev
  libcurl4-openssl-dev libcli11-dev libgtest-dev libgmock-dev libbenchmark-dev
  python3 python3-nacl protobuf-compiler libprotobuf-dev libre2-dev
  clang libclang-rt-14-dev nodejs libboost-dev)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "deps: all ${#PKGS[@]} packages present"
  exit 0
fi
echo "deps: installing ${missing[*]}"
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO=sudo
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"

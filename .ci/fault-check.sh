#!/usr/bin/env bash
# The fault suite's CI subset: emulated ECS tasks behind HAProxy, the baseline and vigil arms,
# failing on unmet expectations (see tests/fault/README.md). Needs root and about 5 minutes.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
  echo "fault-check: needs root (network namespaces, cgroups, veths)" >&2
  exit 77
fi

need=()
command -v haproxy >/dev/null || need+=(haproxy)
command -v prometheus >/dev/null || need+=(prometheus)
command -v nft >/dev/null || need+=(nftables)
command -v ip >/dev/null || need+=(iproute2)
command -v nsenter >/dev/null || need+=(util-linux)
command -v stress-ng >/dev/null || need+=(stress-ng)
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

cargo build --release -p vigil --bin vigil
cargo build --release -p vigil-fault --bins

out="${FAULT_CHECK_OUT:-target/fault-check}"
started=$(date +%s)
status=0
target/release/vigil-fault run tests/fault/scenarios/ci --arms baseline,vigil \
  --vigil target/release/vigil --out "$out" --check || status=$?
echo "fault-check: the CI subset took $(( $(date +%s) - started )) s (status $status)"
exit "$status"

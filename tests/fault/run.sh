#!/usr/bin/env bash
# The fault suite in one command: installs what it needs (Debian packages, only those missing),
# builds vigil, vigil-fault and demo-app (release), then runs `vigil-fault run` with the given
# arguments — by default the full suite, both HAProxy profiles, all three arms.
#
# usage: tests/fault/run.sh [SCENARIO_FILE_OR_FOLDER] [vigil-fault run options]
#   e.g. tests/fault/run.sh
#        tests/fault/run.sh tests/fault/scenarios/oom-leak-medium.toml --profiles alb
# Needs root (network namespaces, cgroups, veths); exits 77 otherwise.
set -euo pipefail
cd "$(dirname "$0")/../.."

if [ "$(id -u)" -ne 0 ]; then
  echo "fault suite: needs root (network namespaces, cgroups, veths)" >&2
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
  echo "fault suite: installing ${need[*]}" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

cargo build --release -p vigil --bin vigil
cargo build --release -p vigil-fault --bins

if [ $# -eq 0 ]; then
  set -- tests/fault/scenarios --profiles fast,alb
fi
exec target/release/vigil-fault run "$@"

#!/usr/bin/env bash
# The fault suite's CI subset: emulated ECS tasks behind HAProxy, the baseline and vigil arms,
# failing on unmet expectations (see tests/fault/README.md). Needs root and about 7 minutes
# (plus the release builds). tests/fault/run.sh installs what is missing and builds.
set -euo pipefail
cd "$(dirname "$0")/.."

out="${FAULT_CHECK_OUT:-target/fault-check}"
started=$(date +%s)
status=0
bash tests/fault/run.sh tests/fault/scenarios/ci --arms baseline,vigil --out "$out" --check || status=$?
echo "fault-check: the CI subset took $(( $(date +%s) - started )) s, builds included (status $status)"
exit "$status"

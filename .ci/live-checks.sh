#!/usr/bin/env bash
# Starts vigil on loopback, checks a live scrape with promtool, then starts a real Prometheus
# (loopback, temporary storage) that scrapes vigil and asks it, through its HTTP API, for
# `up == 1` and a vigil_ series. Cleans up on every exit path; ends only the PIDs it started.
set -euo pipefail
vigil_bin=${1:?usage: live-checks.sh path/to/vigil}
work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT INT TERM

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_for() { # url, seconds
  local deadline=$((SECONDS + $2))
  until curl -fsS -o /dev/null "$1" 2>/dev/null; do
    [ $SECONDS -lt $deadline ] || { echo "no answer from $1 within $2 s" >&2; return 1; }
    sleep 0.2
  done
}

vigil_port=$(free_port)
VIGIL_LISTEN=127.0.0.1:$vigil_port VIGIL_INTERVAL=500ms "$vigil_bin" >"$work/vigil.log" 2>&1 &
pids+=($!)
wait_for "http://127.0.0.1:$vigil_port/health" 10
sleep 1.5  # a few ticks, so every local family has readings

curl -fsS "http://127.0.0.1:$vigil_port/metrics" >"$work/metrics.txt"
promtool check metrics <"$work/metrics.txt"
echo "promtool check metrics: ok ($(grep -vc '^#' "$work/metrics.txt") samples)"
curl -fsS "http://127.0.0.1:$vigil_port/status" | python3 -c 'import json,sys; d=json.load(sys.stdin); assert d["state"] in ("healthy","degraded"), d; print("status: ok,", d["state"])'

prom_port=$(free_port)
cat >"$work/prometheus.yml" <<YML
global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: vigil
    static_configs:
      - targets: ["127.0.0.1:$vigil_port"]
YML
prometheus --config.file="$work/prometheus.yml" --storage.tsdb.path="$work/tsdb" \
  --web.listen-address="127.0.0.1:$prom_port" >"$work/prometheus.log" 2>&1 &
pids+=($!)
wait_for "http://127.0.0.1:$prom_port/-/ready" 30

query() { curl -fsS --get "http://127.0.0.1:$prom_port/api/v1/query" --data-urlencode "query=$1"; }
deadline=$((SECONDS + 30))
until query 'up{job="vigil"} == 1' | python3 -c 'import json,sys; sys.exit(0 if json.load(sys.stdin)["data"]["result"] else 1)'; do
  [ $SECONDS -lt $deadline ] || { echo "Prometheus never saw up == 1"; cat "$work/prometheus.log"; exit 1; }
  sleep 0.5
done
echo "prometheus: up{job=\"vigil\"} == 1"
query 'sum(vigil_health_state{state=~"healthy|degraded"})' | python3 -c '
import json, sys
result = json.load(sys.stdin)["data"]["result"]
assert result and float(result[0]["value"][1]) == 1.0, result
print("prometheus: vigil_health_state scraped, value", result[0]["value"][1])'
query 'vigil_ticks_total' | python3 -c '
import json, sys
result = json.load(sys.stdin)["data"]["result"]
assert result and float(result[0]["value"][1]) > 0, result
print("prometheus: vigil_ticks_total =", result[0]["value"][1])'

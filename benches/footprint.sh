#!/usr/bin/env bash
# Footprint, side by side in one run: vigil (ticking every second, in local mode) and
# prometheus-node-exporter, both scraped every second for the same minute on the same machine.
# Reports CPU (100 % = one core) and resident memory of each, and vigil's share of node_exporter's.
#
# usage: benches/footprint.sh [path/to/vigil] [seconds]
# needs: curl, prometheus-node-exporter (Debian package of that name)
set -euo pipefail
vigil_bin=${1:-target/release/vigil}
seconds=${2:-60}
command -v prometheus-node-exporter >/dev/null || { echo "install prometheus-node-exporter first" >&2; exit 1; }

# shellcheck source=../.ci/lib.sh
source "$(dirname "$0")/../.ci/lib.sh"

vigil_port=$(free_port)
node_port=$(free_port)
VIGIL_LISTEN=127.0.0.1:$vigil_port "$vigil_bin" >"$work/vigil.log" 2>&1 &
vigil_pid=$!
pids+=("$vigil_pid")
prometheus-node-exporter --web.listen-address=127.0.0.1:$node_port >"$work/node.log" 2>&1 &
node_pid=$!
pids+=("$node_pid")
sleep 3 # both up and past their start-up allocations

ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
hwm_kib() { awk '/^VmHWM/ {print $2}' "/proc/$1/status"; }
# Anonymous memory (heap, stacks): what the process itself allocated. The rest of RSS is clean
# pages of its executable and libraries, shared with the page cache and reclaimable.
anon_kib() { awk '/^RssAnon/ {print $2}' "/proc/$1/status"; }
hz=$(getconf CLK_TCK)

v0=$(ticks $vigil_pid) n0=$(ticks $node_pid)
v_rss_sum=0 n_rss_sum=0 samples=0
for _ in $(seq "$seconds"); do
  curl -fsS -o /dev/null "http://127.0.0.1:$vigil_port/metrics"
  curl -fsS -o /dev/null "http://127.0.0.1:$node_port/metrics"
  v_rss_sum=$((v_rss_sum + $(rss_kib $vigil_pid)))
  n_rss_sum=$((n_rss_sum + $(rss_kib $node_pid)))
  samples=$((samples + 1))
  sleep 1
done
v1=$(ticks $vigil_pid) n1=$(ticks $node_pid)

awk -v v=$((v1 - v0)) -v n=$((n1 - n0)) -v hz="$hz" -v s="$seconds" \
  -v vr=$((v_rss_sum / samples)) -v nr=$((n_rss_sum / samples)) \
  -v vh="$(hwm_kib $vigil_pid)" -v nh="$(hwm_kib $node_pid)" \
  -v va="$(anon_kib $vigil_pid)" -v na="$(anon_kib $node_pid)" -v watched="$(curl -fsS "http://127.0.0.1:$vigil_port/metrics" | awk '/^vigil_processes_watched / {print $2}')" '
BEGIN {
  vc = 100 * v / hz / s; nc = 100 * n / hz / s
  printf "footprint over %d s, scraped every second (vigil watching %d processes)\n", s, watched
  printf "%-26s %10s %14s %14s %14s\n", "process", "CPU %", "RSS avg MiB", "RSS peak MiB", "anon MiB"
  printf "%-26s %10.3f %14.1f %14.1f %14.1f\n", "vigil", vc, vr / 1024, vh / 1024, va / 1024
  printf "%-26s %10.3f %14.1f %14.1f %14.1f\n", "prometheus-node-exporter", nc, nr / 1024, nh / 1024, na / 1024
  printf "vigil / node_exporter:     CPU %s, RSS %.2f\n", (nc > 0 ? sprintf("%.2f", vc / nc) : "n/a"), vr / nr
}'

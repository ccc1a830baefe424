#!/usr/bin/env bash
# Footprint, side by side: vigil and prometheus-node-exporter started together in the same task
# and scraped every second for the same minutes on the same machine, several times over.
#
# The task is built as Fargate builds one: its own PID namespace (pidMode "task": vigil sees the
# task's processes, not the host's) with its own /proc, and its own network namespace (awsvpc:
# loopback only). In it run the app (a Python HTTP server and two helper processes, which vigil
# watches), vigil, node_exporter and this script's loop. vigil ticks every second, as shipped.
#
# For each repetition: CPU (100 % = one core), resident memory (mean and peak of one sample a
# second, and anonymous memory at the end) of each, vigil's mean tick, the time from exec to
# the first /health 200, and vigil's share of node_exporter's; then the median of each. Also the
# sizes of both binaries.
#
# usage: benches/footprint.sh [--vigil path] [--seconds N] [--reps N] [--host]
#   --host  run on the host instead, vigil watching every process it can see (local mode)
# needs: root (namespaces), curl, iproute2, python3, prometheus-node-exporter (Debian package)
set -euo pipefail
vigil_bin=target/release/vigil seconds=120 reps=3 host=false
while [ $# -gt 0 ]; do
  case $1 in
    --vigil) vigil_bin=$2; shift 2 ;;
    --seconds) seconds=$2; shift 2 ;;
    --reps) reps=$2; shift 2 ;;
    --host) host=true; shift ;;
    *) echo "usage: benches/footprint.sh [--vigil path] [--seconds N] [--reps N] [--host]" >&2; exit 64 ;;
  esac
done
vigil_bin=$(realpath "$vigil_bin")
node_bin=$(command -v prometheus-node-exporter) || { echo "install prometheus-node-exporter first" >&2; exit 1; }

if [ "$host" = false ] && [ "${FOOTPRINT_IN_TASK:-}" != 1 ]; then
  [ "$(id -u)" -eq 0 ] || { echo "footprint: a task's namespaces need root (or use --host)" >&2; exit 1; }
  exec env FOOTPRINT_IN_TASK=1 unshare --pid --fork --mount-proc --net \
    bash "$0" --vigil "$vigil_bin" --seconds "$seconds" --reps "$reps"
fi

# shellcheck source=../.ci/lib.sh
source "$(dirname "$0")/../.ci/lib.sh"
hz=$(getconf CLK_TCK)
watch=()
if [ "$host" = false ]; then
  ip link set lo up
  # The app: a web server and two helpers.
  python3 -m http.server 8080 --bind 127.0.0.1 >"$work/app.log" 2>&1 &
  pids+=($!)
  for _ in 1 2; do
    sleep 86400 &
    pids+=($!)
  done
  watch=(VIGIL_WATCH='(^|/)python3 -m http\.server|^sleep 86400$')
fi

ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
kib() { awk -v key="$2:" '$1 == key {print $2}' "/proc/$1/status"; }
metric() { curl -fsS "http://127.0.0.1:$vigil_port/metrics" | awk -v name="$1" '$1 == name {print $2}'; }
now_ns() { date +%s%N; }

results=$work/results
for rep in $(seq "$reps"); do
  vigil_port=$(free_port)
  node_port=$(free_port)
  started=$(now_ns)
  env "${watch[@]}" VIGIL_LISTEN="127.0.0.1:$vigil_port" "$vigil_bin" >"$work/vigil.log" 2>&1 &
  vigil_pid=$!
  pids+=("$vigil_pid")
  "$node_bin" --web.listen-address="127.0.0.1:$node_port" >"$work/node.log" 2>&1 &
  node_pid=$!
  pids+=("$node_pid")
  # exec to the first /health 200, polled with vigil's own probe (what the container health
  # check runs); bounded at 10 s.
  ready_ms=-1
  for _ in $(seq 2000); do
    if VIGIL_LISTEN="127.0.0.1:$vigil_port" "$vigil_bin" probe >/dev/null 2>&1; then
      ready_ms=$((($(now_ns) - started) / 1000000))
      break
    fi
    sleep 0.005
  done
  [ "$ready_ms" -ge 0 ] || { cat "$work/vigil.log"; echo "vigil did not answer /health 200 within 10 s" >&2; exit 1; }
  sleep 3 # both past their start-up allocations

  v0=$(ticks "$vigil_pid") n0=$(ticks "$node_pid")
  t0_sum=$(metric vigil_tick_duration_seconds_sum) t0_count=$(metric vigil_tick_duration_seconds_count)
  v_rss_sum=0 n_rss_sum=0 v_peak=0 n_peak=0 samples=0
  for _ in $(seq "$seconds"); do
    curl -fsS -o /dev/null "http://127.0.0.1:$vigil_port/metrics"
    curl -fsS -o /dev/null "http://127.0.0.1:$node_port/metrics"
    v=$(kib "$vigil_pid" VmRSS) n=$(kib "$node_pid" VmRSS)
    v_rss_sum=$((v_rss_sum + v)) n_rss_sum=$((n_rss_sum + n))
    [ "$v" -gt "$v_peak" ] && v_peak=$v
    [ "$n" -gt "$n_peak" ] && n_peak=$n
    samples=$((samples + 1))
    sleep 1
  done
  v1=$(ticks "$vigil_pid") n1=$(ticks "$node_pid")
  t1_sum=$(metric vigil_tick_duration_seconds_sum) t1_count=$(metric vigil_tick_duration_seconds_count)
  watched=$(metric vigil_processes_watched)
  awk -v rep="$rep" -v v=$((v1 - v0)) -v n=$((n1 - n0)) -v hz="$hz" -v s="$seconds" \
    -v vr=$((v_rss_sum / samples)) -v nr=$((n_rss_sum / samples)) -v vp="$v_peak" -v np="$n_peak" \
    -v va="$(kib "$vigil_pid" RssAnon)" -v na="$(kib "$node_pid" RssAnon)" \
    -v ts="$t0_sum" -v tc="$t0_count" -v us="$t1_sum" -v uc="$t1_count" -v ready="$ready_ms" \
    -v watched="$watched" 'BEGIN {
      vc = 100 * v / hz / s; nc = 100 * n / hz / s
      tick = (uc > tc) ? 1e6 * (us - ts) / (uc - tc) : -1
      # rep, watched, vigil cpu, rss avg, peak, anon (MiB), node cpu, rss avg, peak, anon, tick us, ready ms
      printf "%d %d %.3f %.2f %.2f %.2f %.3f %.2f %.2f %.2f %.0f %d\n", rep, watched, vc, vr / 1024, vp / 1024,
        va / 1024, nc, nr / 1024, np / 1024, na / 1024, tick, ready
    }' >>"$results"
  kill "$vigil_pid" "$node_pid"
  # vigil keeps serving for its drain period after SIGTERM; end it now.
  kill -KILL "$vigil_pid" 2>/dev/null || true
  wait "$vigil_pid" "$node_pid" 2>/dev/null || true
done

place=$([ "$host" = true ] && echo "on the host, vigil watching every process it sees" ||
  echo "in a task (own PID and network namespaces)")
echo "footprint: $reps x $seconds s, $place; both scraped every second"
awk -v vsize="$(stat -c %s "$vigil_bin")" -v nsize="$(stat -L -c %s "$node_bin")" '
function median(column,    n, i, j, t, v) {
  n = 0
  for (i = 1; i <= rows; i++) v[++n] = cell[i, column]
  for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (v[j] < v[i]) { t = v[i]; v[i] = v[j]; v[j] = t }
  return (n % 2) ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
}
{ rows++; for (c = 1; c <= NF; c++) cell[rows, c] = $c }
END {
  printf "%-4s %8s | %-28s | %-28s | %9s %9s\n", "rep", "watched", "vigil CPU % / RSS avg, peak, anon MiB",
    "node_exporter CPU % / RSS …", "tick µs", "ready ms"
  for (i = 1; i <= rows; i++)
    printf "%-4d %8d | %6.3f / %5.1f %5.1f %5.1f       | %6.3f / %5.1f %5.1f %5.1f       | %9d %9d\n",
      cell[i, 1], cell[i, 2], cell[i, 3], cell[i, 4], cell[i, 5], cell[i, 6], cell[i, 7], cell[i, 8], cell[i, 9],
      cell[i, 10], cell[i, 11], cell[i, 12]
  vc = median(3); va = median(4); vp = median(5); vn = median(6)
  nc = median(7); na = median(8); np = median(9); nn = median(10)
  printf "\nmedian of %d           %-14s %-16s\n", rows, "vigil", "node_exporter   vigil / node_exporter"
  printf "CPU %% of a core       %-14.3f %-16.3f %.2f\n", vc, nc, (nc > 0 ? vc / nc : 0)
  printf "RSS mean MiB          %-14.1f %-16.1f %.2f\n", va, na, va / na
  printf "RSS peak MiB          %-14.1f %-16.1f %.2f\n", vp, np, vp / np
  printf "anonymous MiB         %-14.1f %-16.1f %.2f\n", vn, nn, vn / nn
  printf "binary MiB            %-14.1f %-16.1f %.2f\n", vsize / 1048576, nsize / 1048576, vsize / nsize
  printf "vigil tick (mean)     %d µs\n", median(11)
  printf "exec to /health 200   %d ms\n", median(12)
}' "$results"

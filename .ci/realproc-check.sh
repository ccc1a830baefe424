#!/usr/bin/env bash
# Real processes hitting real limits, watched by the real vigil binary:
#  - a process leaking memory inside a memory cgroup with a limit (the kernel OOM-kills it);
#    /health must turn 503 with reason memory_exhaustion at least 30 s before the kill;
#    the leak's vigil is killed with SIGKILL 50 s in (before its warm-up ends) and started again:
#    the new one must answer /health within 2 s and rebuild its history within its own warm-up,
#    so the drain still comes at least 30 s before the kill;
#  - a process with a garbage-collector-like sawtooth that never grows; /health must stay 200.
# Both run at once. Needs root (it creates cgroups). Ends only the PIDs it started.
set -euo pipefail
vigil_bin=$(realpath "${1:?usage: realproc-check.sh path/to/vigil}")
here=$(cd "$(dirname "$0")/.." && pwd)
[ "$(id -u)" -eq 0 ] || { echo "realproc-check: needs root to create memory cgroups" >&2; exit 1; }

limit_mib=256
fill_seconds=180
tag="vigil-realproc-$$"
work=$(mktemp -d)
pids=()
cgroups=()

# The memory cgroup to create children in: our own (v1 controller or v2 unified).
if [ -d /sys/fs/cgroup/memory ]; then
  version=1
  parent=/sys/fs/cgroup/memory$(awk -F: '$2 == "memory" {print $3}' /proc/self/cgroup)
else
  version=2
  parent=/sys/fs/cgroup$(awk -F: '$1 == "0" {print $3}' /proc/self/cgroup)
fi
parent=${parent%/}

cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  for cg in "${cgroups[@]}"; do rmdir "$cg" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT INT TERM
# Leftovers of a run that was killed.
for stale in "$parent"/vigil-realproc-*; do [ -d "$stale" ] && rmdir "$stale" 2>/dev/null || true; done

# Creates a memory cgroup with the limit; sets $cg. (No subshell: the cleanup list must grow here.)
make_cgroup() { # name
  cg="$parent/$tag-$1"
  mkdir "$cg"
  cgroups+=("$cg")
  if [ $version = 1 ]; then
    echo $((limit_mib * 1024 * 1024)) >"$cg/memory.limit_in_bytes"
    [ -f "$cg/memory.memsw.limit_in_bytes" ] && echo $((limit_mib * 1024 * 1024)) >"$cg/memory.memsw.limit_in_bytes"
  else
    echo $((limit_mib * 1024 * 1024)) >"$cg/memory.max"
    echo 0 >"$cg/memory.swap.max" 2>/dev/null || true
  fi
}
oom_kills() { # cgroup path
  if [ $version = 1 ]; then awk '$1 == "oom_kill" {print $2}' "$1/memory.oom_control"; else awk '$1 == "oom_kill" {print $2}' "$1/memory.events"; fi
}
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
now() { date +%s.%N; }
calc() { awk "BEGIN { printf \"%.3f\", $* }"; }
true_that() { awk "BEGIN { exit !($*) }"; }

# Starts a workload in a fresh cgroup and a vigil watching it; sets $workload, $port and $cg.
start_case() { # name, workload args...
  local name=$1; shift
  make_cgroup "$name"
  # Join the cgroup first, then become the workload, so every page it touches is charged there.
  sh -c 'echo $$ > "$1/cgroup.procs"; shift; exec "$@"' sh "$cg" python3 "$here/tests/realproc/memory.py" "$@" "$tag-$name" \
    >"$work/$name.out" 2>&1 &
  workload=$!
  pids+=("$workload")
  port=$(free_port)
  start_vigil "$name" "$port"
}
# Starts a vigil watching the named case on the port; sets $vigil_pid.
start_vigil() { # name, port
  VIGIL_LISTEN=127.0.0.1:$2 VIGIL_WATCH="$tag-$1" VIGIL_LOG_FORMAT=text "$vigil_bin" >>"$work/vigil-$1.log" 2>&1 &
  vigil_pid=$!
  pids+=("$vigil_pid")
}

start_case leak leak "$limit_mib" "$fill_seconds"
leak_pid=$workload leak_port=$port leak_cg=$cg leak_vigil=$vigil_pid
# The sawtooth outlives the check; it is ended at cleanup.
start_case sawtooth sawtooth $((limit_mib * 80 / 100)) 20 $((fill_seconds + 120))
saw_pid=$workload saw_port=$port
start=$(now)
echo "leak: pid $leak_pid in $leak_cg, vigil on :$leak_port; sawtooth: pid $saw_pid, vigil on :$saw_port"

health() { curl -s -o "$work/body" -w '%{http_code}' --max-time 1 "http://127.0.0.1:$1/health" || true; }

red_at="" red_body="" killed_at="" saw_red=0 saw_checks=0 restarted_at="" answered_at=""
deadline=$(calc "$start + $fill_seconds + 60")
while :; do
  t=$(now)
  if [ -z "$restarted_at" ] && true_that "$t > $start + 50"; then
    [ -z "$red_at" ] || { echo "FAIL: drained before the restart: the check cannot show the history rebuilt"; exit 1; }
    kill -KILL "$leak_vigil"
    wait "$leak_vigil" 2>/dev/null || true
    start_vigil leak "$leak_port"
    leak_vigil=$vigil_pid restarted_at=$(now)
    for _ in $(seq 1 40); do
      [ "$(health "$leak_port")" = 200 ] && { answered_at=$(now); break; }
      sleep 0.05
    done
    [ -n "$answered_at" ] || { echo "FAIL: the restarted vigil did not answer /health 200 within 2 s"; tail -5 "$work/vigil-leak.log"; exit 1; }
    printf 'leak: vigil killed with SIGKILL %.1f s after start and started again: /health 200 %.2f s after exec\n' \
      "$(calc "$restarted_at - $start")" "$(calc "$answered_at - $restarted_at")"
  fi
  if [ -z "$red_at" ] && [ -z "$killed_at" ]; then
    code=$(health "$leak_port")
    if [ "$code" = 503 ]; then red_at=$t; red_body=$(cat "$work/body"); fi
  fi
  if [ -z "$killed_at" ] && ! kill -0 "$leak_pid" 2>/dev/null; then killed_at=$t; fi
  kill -0 "$saw_pid" 2>/dev/null || { echo "FAIL: the sawtooth process ended early"; cat "$work/sawtooth.out"; exit 1; }
  code=$(health "$saw_port")
  saw_checks=$((saw_checks + 1))
  if [ "$code" != 200 ]; then saw_red=$((saw_red + 1)); echo "sawtooth: /health $code: $(cat "$work/body")"; fi
  # Watch the sawtooth a little past the kill, then stop.
  if [ -n "$killed_at" ] && true_that "$t > $killed_at + 15"; then break; fi
  if true_that "$t > $deadline"; then break; fi
  sleep 0.5
done

status=0
wait "$leak_pid" || status=$?
kills=$(oom_kills "$leak_cg")
echo "leak: exit status $status, oom_kill $kills"
[ -n "$killed_at" ] || { echo "FAIL: the leaking process was never killed"; exit 1; }
[ "$kills" -ge 1 ] || { echo "FAIL: no OOM kill counted"; exit 1; }
[ -n "$red_at" ] || { echo "FAIL: /health never turned 503 before the OOM kill"; tail -20 "$work/vigil-leak.log"; exit 1; }
lead=$(calc "$killed_at - $red_at")
since_start=$(calc "$red_at - $start")
printf 'leak: /health 503 %.1f s after start (%.1f s after the restart), %.1f s before the OOM kill (kill at %.1f s)\n' \
  "$since_start" "$(calc "$red_at - $restarted_at")" "$lead" "$(calc "$killed_at - $start")"
echo "leak: $red_body"
grep -q memory_exhaustion <<<"$red_body" || { echo "FAIL: reason is not memory_exhaustion"; exit 1; }
true_that "$lead >= 30" || { echo "FAIL: drained less than 30 s before the OOM kill"; exit 1; }
echo "sawtooth: $saw_red non-200 answers in $saw_checks checks"
[ "$saw_red" -eq 0 ] || { echo "FAIL: the sawtooth was drained"; tail -20 "$work/vigil-sawtooth.log"; exit 1; }
echo "realproc-check: ok"

#!/usr/bin/env bash
# vigil's security posture, on the real binary and a real kernel:
#  - it runs as user 65534 with no capabilities (none permitted, effective, inherited or in the
#    bounding set) and no_new_privs, as a task definition runs it;
#  - the app it watches is root's: vigil cannot list the app's /proc/<pid>/fd or follow its
#    ns/net link (permission denied). Since Linux 6.2 the fd directory's size gives the number of
#    open files to any user, so that is still read; on older kernels it is missing. Each refusal
#    is counted as a source error, the other readings are still there, and /health stays 200;
#  - it holds no file open for writing;
#  - no endpoint changes state: POST, PUT, DELETE and PATCH get 405, and the agent goes on;
#  - its logs (debug level), /status and /metrics never show an environment value, a credential
#    or the app's arguments: secrets planted in vigil's environment, in the app's environment and
#    in the app's command line must appear nowhere.
# Needs root (to switch user and to run the app as root). Loopback only; ends only its own PIDs.
#
# usage: posture-check.sh path/to/vigil
set -euo pipefail
vigil_bin=$(realpath "${1:?usage: posture-check.sh path/to/vigil}")
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"
[ "$(id -u)" -eq 0 ] || { echo "posture-check: needs root" >&2; exit 1; }
fail() { echo "FAIL: $*"; exit 1; }

secret=vigil-posture-secret
# The app: root's, with a secret in its environment and one in its arguments.
printf 'import time\nwhile True:\n    time.sleep(1)\n' >"$work/vigil-posture-app.py"
env DB_PASSWORD="$secret-app-env" python3 "$work/vigil-posture-app.py" "--db-password=$secret-app-arg" &
app=$!
pids+=("$app")

port=$(free_port)
env -i PATH="$PATH" AWS_SECRET_ACCESS_KEY="$secret-vigil-env" VIGIL_API_TOKEN="$secret-unknown-setting" \
  VIGIL_LISTEN=127.0.0.1:$port VIGIL_WATCH='vigil-posture-app' VIGIL_LOG=debug \
  setpriv --reuid 65534 --regid 65534 --clear-groups --inh-caps=-all --bounding-set=-all --no-new-privs \
  "$vigil_bin" > >(cat >"$work/vigil.out") 2> >(cat >"$work/vigil.err") &
vigil=$!
pids+=("$vigil")

get() { curl -s --max-time 2 "http://127.0.0.1:$port$1" || true; }
tick() { get /status | python3 -c 'import json, sys; print(json.load(sys.stdin)["tick"])' 2>/dev/null || echo 0; }
for _ in $(seq 1 100); do
  [ "$(tick)" -ge 3 ] && break
  kill -0 "$vigil" 2>/dev/null || { cat "$work/vigil.err" "$work/vigil.out"; fail "vigil exited"; }
  sleep 0.1
done
[ "$(tick)" -ge 3 ] || fail "vigil did not tick three times in 10 s"

# Who it runs as.
status_file=/proc/$vigil/status
for line in "Uid:	65534	65534	65534	65534" "Gid:	65534	65534	65534	65534" "NoNewPrivs:	1" \
  "CapInh:	0000000000000000" "CapPrm:	0000000000000000" "CapEff:	0000000000000000" \
  "CapBnd:	0000000000000000" "CapAmb:	0000000000000000"; do
  grep -qxF "$line" "$status_file" || { grep -E '^(Uid|Gid|Cap|NoNewPrivs)' "$status_file"; fail "vigil's status lacks '$line'"; }
done
groups=$(awk '$1 == "Groups:" {print NF - 1}' "$status_file")
[ "$groups" -eq 0 ] || fail "vigil has $groups supplementary groups"
echo "posture: vigil (pid $vigil) runs as 65534:65534, no groups, no capabilities, no_new_privs"

# What it sees of root's app.
get /status >"$work/status.json"
python3 - "$work/status.json" "$app" <<'PY'
import json, os, sys
status, app = json.load(open(sys.argv[1])), int(sys.argv[2])
assert status["health"]["status"] == 200, f"health {status['health']}"
procs = [p for p in status["readings"]["processes"] if p["pid"] == app]
assert procs, f"the app (pid {app}) is not among the watched processes: {status['readings']['processes']}"
p = procs[0]
assert p["name"] == "python3", p
assert p["rss_bytes"] and p["threads"], f"the readable files were not read: {p}"
kernel = tuple(int(part) for part in os.uname().release.split(".")[:2])
sources = status["sources"]
network = sources["network"]
assert network["errors_total"] >= 1 and "permission denied" in network["last_error"], network
if kernel >= (6, 2):
    assert p["open_fds"] and p["open_fds"] >= 3, f"open fds of root's app not read from the fd directory's size: {p}"
    fds = f"{p['open_fds']} open files (from the fd directory's size)"
else:
    assert p["open_fds"] is None, f"open fds of root's app listed as 65534: {p}"
    proc = sources["proc"]
    assert proc["errors_total"] >= 3 and "permission denied" in proc["last_error"], proc
    fds = f"no open files (\"{proc['last_error']}\")"
print(f"posture: root's app read without its namespace link (\"{network['last_error']}\", "
      f"{network['errors_total']} errors), {fds}, rss {p['rss_bytes']} bytes, {p['threads']} thread(s); "
      f"/health {status['health']['status']}")
PY

# Files open for writing: none (sockets, pipes and anonymous inodes are not files; its stdout and
# stderr are pipes here, as under a container runtime).
written=0
for fd in /proc/"$vigil"/fd/*; do
  target=$(readlink "$fd" || true)
  case "$target" in /*) ;; *) continue ;; esac
  flags=$(awk '$1 == "flags:" {print $2}' "/proc/$vigil/fdinfo/${fd##*/}")
  mode=$((8#$flags & 3))
  if [ "$mode" -ne 0 ] && [ "$target" != /dev/null ]; then
    echo "open for writing: fd ${fd##*/} -> $target (flags $flags)"; written=$((written + 1))
  fi
done
[ "$written" -eq 0 ] || fail "vigil holds $written files open for writing"
echo "posture: no file open for writing ($(find /proc/"$vigil"/fd -mindepth 1 | wc -l) fds)"

# No endpoint changes state.
before=$(tick)
for path in / /health /live /metrics /status; do
  for method in POST PUT DELETE PATCH; do
    code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 -X "$method" -d 'state=draining' "http://127.0.0.1:$port$path" || true)
    [ "$code" = 405 ] || fail "$method $path answered $code, not 405"
  done
done
sleep 1.5
[ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "http://127.0.0.1:$port/health")" = 200 ] || fail "/health is not 200 after the writes"
[ "$(tick)" -gt "$before" ] || fail "the agent stopped ticking"
echo "posture: POST, PUT, DELETE and PATCH on every endpoint answered 405; still ticking, /health 200"

# No secret anywhere it speaks.
get /metrics >"$work/metrics.txt"
get /status >"$work/status2.json"
for file in vigil.out vigil.err metrics.txt status.json status2.json; do
  if grep -F -n "$secret" "$work/$file"; then fail "$file shows a secret"; fi
done
grep -q '"unknown_setting"' "$work/vigil.out" "$work/vigil.err" || fail "the unknown VIGIL_API_TOKEN was not warned about"
grep -q 'VIGIL_API_TOKEN' "$work/vigil.out" "$work/vigil.err" || fail "the warning does not name VIGIL_API_TOKEN"
echo "posture: no planted secret in $(cat "$work"/vigil.out "$work"/vigil.err | wc -l) log lines, /status or /metrics ($(wc -l <"$work/metrics.txt") lines)"
echo "posture-check: ok"

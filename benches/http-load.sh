#!/usr/bin/env bash
# Load and abuse on vigil's HTTP port, against the release binary in local mode.
#
#   1. wrk on /health and /metrics: requests per second and p99 latency.
#   2. Abuse: idle connections and slow-header clients (slowloris) held open while /health is
#      polled every 250 ms with a 1 s timeout; an oversize header and an oversize body. Every
#      poll must be answered within the second, and vigil's open fds must stay bounded.
#   3. Soak: /health and /metrics at a steady rate with connection churn, RSS and fd count of
#      vigil sampled every 5 s; prints the slope of each (per minute) over the run.
#
# usage: benches/http-load.sh [--quick] [--vigil PATH] [--soak SECONDS]
#   --quick   what .ci/run runs: wrk 3 s each, 2,000 abusive clients for 10 s, soak 30 s
#   default   wrk 20 s each, 2,000 abusive clients for 30 s, soak 600 s
# Needs wrk (Debian package, installed when missing) and python3. Ends only the PIDs it started.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=../.ci/lib.sh
source .ci/lib.sh

quick=false
vigil=target/release/vigil
soak=
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) quick=true; shift ;;
    --vigil) vigil=$2; shift 2 ;;
    --soak) soak=$2; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
if $quick; then wrk_s=3; abuse_s=10; soak=${soak:-30}; else wrk_s=20; abuse_s=30; soak=${soak:-600}; fi
command -v wrk >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; }
[ -x "$vigil" ] || cargo build --release --bin vigil
ulimit -n 16384

port=$(free_port)
# As in a task: one watched process (this script's shell), 1 s ticks.
VIGIL_LISTEN=127.0.0.1:$port VIGIL_WATCH=bash VIGIL_LOG=warn "$vigil" >"$work/vigil.log" 2>&1 &
vigil_pid=$!
pids+=("$vigil_pid")
deadline=$((SECONDS + 20))
until curl -fsS -o /dev/null "http://127.0.0.1:$port/health" 2>/dev/null; do
  [ $SECONDS -lt $deadline ] || { echo "vigil did not answer"; cat "$work/vigil.log"; exit 1; }
  sleep 0.2
done
fds() { find "/proc/$vigil_pid/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l; }
rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$vigil_pid/status"; }

echo "== wrk, ${wrk_s} s each, 2 threads, 32 connections"
for path in /health /metrics; do
  out=$(wrk -t2 -c32 -d"${wrk_s}s" --latency "http://127.0.0.1:$port$path")
  rps=$(awk '/^Requests\/sec/ {print $2}' <<<"$out")
  p99=$(awk '$1 == "99%" {print $2}' <<<"$out")
  errors=$(awk '/Non-2xx|Socket errors/' <<<"$out")
  echo "$path: ${rps} req/s, p99 ${p99}${errors:+, $errors}"
done
echo "after wrk: vigil RSS $(rss_kb) kB, $(fds) fds"

echo "== abuse: 1,000 idle and 1,000 slow-header clients for ${abuse_s} s, /health polled every 250 ms"
python3 - "$port" "$abuse_s" "$vigil_pid" <<'PY'
import os, socket, sys, threading, time, http.client
port, seconds, pid = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
stop = time.monotonic() + seconds
idle, slow, opened = [], [], [0]
def connect():
    s = socket.socket(); s.settimeout(2)
    try:
        s.connect(("127.0.0.1", port)); opened[0] += 1; return s
    except OSError:
        s.close(); return None
def abuser():
    # Keeps 1,000 of each open: vigil closes the oldest beyond its cap, they come back.
    while time.monotonic() < stop:
        for pool, start in ((idle, None), (slow, b"GET /health HTTP/1.1\r\nHost: x\r\n")):
            alive = []
            for s in pool:
                try:
                    if start is not None:
                        s.send(b"X-Slow: 1\r\n")
                    alive.append(s)
                except OSError:
                    s.close()
            pool[:] = alive
            while len(pool) < 1000 and time.monotonic() < stop:
                s = connect()
                if s is None:
                    break
                if start is not None:
                    try: s.send(start)
                    except OSError: s.close(); continue
                pool.append(s)
        time.sleep(0.5)
threading.Thread(target=abuser, daemon=True).start()
def fds():
    return len(os.listdir(f"/proc/{pid}/fd"))
polls, late, worst, most_fds = 0, 0, 0.0, 0
time.sleep(1)
while time.monotonic() < stop:
    started = time.monotonic()
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
        c.request("GET", "/health"); r = c.getresponse(); r.read(); c.close()
        took = time.monotonic() - started
        if r.status != 200 or took > 1: late += 1
    except OSError:
        took = time.monotonic() - started; late += 1
    polls += 1; worst = max(worst, took); most_fds = max(most_fds, fds())
    time.sleep(max(0, 0.25 - took))
print(f"/health: {polls} polls, {late} late or failed, slowest {worst*1000:.0f} ms; "
      f"{opened[0]} abusive connections opened; vigil's fds at most {most_fds}")
# Oversize header and body: refused or cut off, never read whole.
s = socket.create_connection(("127.0.0.1", port), timeout=3)
try:
    s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (64 * 1024) + b"\r\n\r\n")
    head = s.recv(64)
except OSError:
    head = b"(closed)"
s.close()
first = head.split(b"\r\n")[0].decode(errors="replace") or "(closed)"
print(f"64 KiB header: {first}")
s = socket.create_connection(("127.0.0.1", port), timeout=3)
s.sendall(b"POST /health HTTP/1.1\r\nHost: x\r\nContent-Length: 104857600\r\n\r\n" + b"a" * 65536)
try: head = s.recv(64)
except OSError: head = b"(closed)"
s.close()
first = head.split(b"\r\n")[0].decode(errors="replace") or "(closed)"
print(f"100 MB body announced: {first}")
sys.exit(1 if late else 0)
PY
echo "after abuse: vigil RSS $(rss_kb) kB, $(fds) fds"
[ "$(fds)" -lt 300 ] || { echo "vigil holds $(fds) fds after the abuse"; exit 1; }

echo "== soak: ${soak} s of /health and /metrics at 20 req/s, new connection every request"
python3 - "$port" "$soak" "$vigil_pid" <<'PY'
import os, sys, time, http.client
port, seconds, pid = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
def rss_kb():
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS"): return int(line.split()[1])
samples, start, n, failed, next_sample = [], time.monotonic(), 0, 0, 0.0
while (now := time.monotonic() - start) < seconds:
    path = "/metrics" if n % 2 else "/health"
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        c.request("GET", path); r = c.getresponse(); r.read(); c.close()
        failed += r.status != 200
    except OSError:
        failed += 1
    n += 1
    if now >= next_sample:
        samples.append((now / 60, rss_kb(), len(os.listdir(f"/proc/{pid}/fd")))); next_sample += 5
    time.sleep(0.05)
def slope(points):
    mx = sum(x for x, _ in points) / len(points); my = sum(y for _, y in points) / len(points)
    den = sum((x - mx) ** 2 for x, _ in points)
    return sum((x - mx) * (y - my) for x, y in points) / den if den else 0.0
# The first minute holds the warm-up (buffers grown once); the slope is taken after it when
# the run is long enough.
steady = [s for s in samples if s[0] >= 1] if seconds >= 180 else samples
rss = [(t, r) for t, r, _ in steady]; fd = [(t, f) for t, _, f in steady]
print(f"{n} requests, {failed} failed; RSS {min(r for _, r in rss)}..{max(r for _, r in rss)} kB, "
      f"slope {slope(rss):+.1f} kB/min; fds {min(f for _, f in fd)}..{max(f for _, f in fd)}, slope {slope(fd):+.2f}/min "
      f"({len(steady)} samples)")
sys.exit(1 if failed else 0)
PY

#!/usr/bin/env bash
# vigil's HAProxy agent check against a real HAProxy: one server whose `agent-check` reads
# vigil's VIGIL_AGENT_CHECK_LISTEN. The app behind it is a small loopback server whose /health
# the script steers (ok, 503, hang); HAProxy's view of the server (status and weight) is read
# from its stats socket. Expected: UP at weight 100 while healthy, UP at 50 while degraded
# (the app answers 503: app_errors), DRAIN (agent) while vigil drains (the app hangs), and UP at 100 again
# once the app recovers (only `ready` clears a drain). Loopback only; ends only its own PIDs.
#
# usage: agent-check.sh path/to/vigil
set -euo pipefail
vigil_bin=${1:?usage: agent-check.sh path/to/vigil}
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"


app_port=$(free_port)
echo ok >"$work/mode"
python3 - "$app_port" "$work/mode" vigil-agent-check-app >"$work/app.log" 2>&1 <<'PY' &
import http.server, sys, time
port, mode_file = int(sys.argv[1]), sys.argv[2]
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        mode = open(mode_file).read().strip()
        if mode == "hang":
            time.sleep(2)
        status = 503 if mode == "errors" else 200
        body = b"ok" if status == 200 else b"dependency down"
        self.send_response(status)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()
PY
pids+=($!)

vigil_port=$(free_port)
agent_port=$(free_port)
env -i PATH="$PATH" VIGIL_LISTEN=127.0.0.1:$vigil_port VIGIL_AGENT_CHECK_LISTEN=127.0.0.1:$agent_port \
  VIGIL_INTERVAL=250ms VIGIL_APP_HEALTH_URL=http://127.0.0.1:$app_port/health VIGIL_APP_HEALTH_TIMEOUT=200ms \
  VIGIL_WATCH=vigil-agent-check-app VIGIL_LOG_FORMAT=text "$vigil_bin" >"$work/vigil.log" 2>&1 &
pids+=($!)

front_port=$(free_port)
cat >"$work/haproxy.cfg" <<CFG
global
  stats socket $work/s.sock mode 600 level admin
defaults
  mode http
  timeout connect 1s
  timeout client 5s
  timeout server 5s
frontend front
  bind 127.0.0.1:$front_port
  default_backend app
backend app
  server task1 127.0.0.1:$app_port weight 100 check inter 1s agent-check agent-addr 127.0.0.1 agent-port $agent_port agent-inter 250ms
CFG
haproxy -c -f "$work/haproxy.cfg" >"$work/haproxy-check.log" 2>&1 || { cat "$work/haproxy-check.log"; exit 1; }
haproxy -db -f "$work/haproxy.cfg" >"$work/haproxy.log" 2>&1 &
pids+=($!)

# "STATUS WEIGHT" of the server, from `show stat` on the stats socket.
server_state() {
  python3 - "$work/s.sock" <<'PY'
import csv, io, socket, sys
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
s.sendall(b"show stat\n")
data = b""
while chunk := s.recv(65536):
    data += chunk
rows = csv.DictReader(io.StringIO(data.decode().lstrip("# ")))
for row in rows:
    if row["pxname"] == "app" and row["svname"] == "task1":
        print(row["status"], row["weight"])  # weight: the configured one while drained
PY
}

expect() { # status weight seconds what
  local deadline=$((SECONDS + $3)) state=""
  while [ $SECONDS -lt $deadline ]; do
    state=$(server_state 2>/dev/null || true)
    # shellcheck disable=SC2053  # the weight may be a pattern
    if [[ "$state" == "$1 "$2 ]]; then
      echo "agent-check: $4 -> HAProxy shows $state"
      return 0
    fi
    sleep 0.2
  done
  echo "agent-check: $4: expected '$1 $2', HAProxy shows '$state'"
  echo "--- vigil /status"; curl -sS "http://127.0.0.1:$vigil_port/status" | head -c 2000; echo
  echo "--- vigil log"; tail -20 "$work/vigil.log"
  echo "--- haproxy log"; tail -20 "$work/haproxy.log"
  exit 1
}

expect UP 100 15 "healthy"
echo errors >"$work/mode"
expect UP 50 15 "degraded (the app answers 503)"
echo hang >"$work/mode"
expect "DRAIN (agent)" "*" 15 "draining (the app hangs)"
echo ok >"$work/mode"
expect UP 100 20 "recovered"

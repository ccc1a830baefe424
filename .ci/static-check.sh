#!/usr/bin/env bash
# The container image is `FROM scratch`: the binary must need nothing from a root filesystem.
# Checks the static vigil (as the Dockerfile builds it) has no program interpreter and needs no
# shared library, then starts it as user 65534 inside an empty root directory (chroot), as the
# scratch image runs it: /health must answer 200, `/vigil probe` (the image's HEALTHCHECK) must
# exit 0, and a host name from the root's /etc/hosts must resolve (the app probe reaches a
# loopback server through it). Needs root for chroot. Ends only the PIDs it started.
#
# usage: static-check.sh path/to/static/vigil
set -euo pipefail
binary=${1:?usage: static-check.sh path/to/static/vigil}
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

if readelf -lW "$binary" | grep -q 'Requesting program interpreter'; then
  echo "$binary asks for a program interpreter: not static"; readelf -lW "$binary" | grep interpreter; exit 1
fi
needed=$(readelf -dW "$binary" | grep -c '(NEEDED)' || true)
if [ "$needed" -ne 0 ]; then
  echo "$binary needs shared libraries:"; readelf -dW "$binary" | grep '(NEEDED)'; exit 1
fi
# A static-pie keeps a dynamic section only to relocate itself where the kernel loaded it (ASLR):
# it must name nothing (empty string table, no NEEDED, SONAME, RPATH or RUNPATH) and hold only
# relative relocations, which need no symbol and no loader.
if readelf -dW "$binary" | grep -E -q '\((SONAME|RPATH|RUNPATH)\)'; then
  echo "$binary names libraries or search paths:"; readelf -dW "$binary"; exit 1
fi
strsz=$(readelf -dW "$binary" | awk '/\(STRSZ\)/ {print $(NF-1)}')
if [ -n "$strsz" ] && [ "$strsz" -gt 1 ]; then
  echo "$binary has a dynamic string table of $strsz bytes: it names something to load"; exit 1
fi
others=$(readelf -rW "$binary" | awk 'NR > 3 && $3 ~ /^R_/ && $3 !~ /_(RELATIVE|IRELATIVE)$/' | wc -l)
if [ "$others" -ne 0 ]; then
  echo "$binary has $others relocations that need a symbol:"; readelf -rW "$binary" | awk '$3 ~ /^R_/ && $3 !~ /RELATIVE$/' | head; exit 1
fi
relative=$(readelf -rW "$binary" | awk 'NR > 3 && $3 ~ /RELATIVE$/' | wc -l)
echo "static: no interpreter, no shared library, dynamic section names nothing ($relative relative relocations only; $(file -b "$binary" | cut -d, -f1-2))"

chroot_bin=$(command -v chroot)

# An app on loopback for vigil to probe, by a name only the chroot's /etc/hosts knows.
app_port=$(free_port)
python3 - "$app_port" >"$work/app.log" 2>&1 <<'PY' &
import http.server, sys
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200); self.send_header("content-length", "2"); self.end_headers(); self.wfile.write(b"ok")
    def log_message(self, *args):
        pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
PY
pids+=($!)

root=$work/root
mkdir -p "$root/etc"
install -m 0755 "$binary" "$root/vigil"
echo "127.0.0.1 app.internal" >"$root/etc/hosts"
[ "$(find "$root" -type f | wc -l)" -eq 2 ] || { echo "the root holds more than /vigil and /etc/hosts"; exit 1; }

port=$(free_port)
env -i VIGIL_LISTEN=127.0.0.1:$port VIGIL_INTERVAL=500ms VIGIL_LOG_FORMAT=text \
  VIGIL_APP_HEALTH_URL=http://app.internal:$app_port/health \
  "$chroot_bin" --userspec=65534:65534 "$root" /vigil >"$work/vigil.log" 2>&1 &
pids+=($!)

deadline=$((SECONDS + 10))
until curl -fsS -o /dev/null "http://127.0.0.1:$port/health" 2>/dev/null; do
  if [ $SECONDS -ge $deadline ]; then echo "no 200 from /health in the empty root"; cat "$work/vigil.log"; exit 1; fi
  sleep 0.2
done
echo "empty root: /health answers $(curl -sS "http://127.0.0.1:$port/health")"

env -i VIGIL_LISTEN=127.0.0.1:$port "$chroot_bin" --userspec=65534:65534 "$root" /vigil probe
echo "empty root: vigil probe exits 0"

deadline=$((SECONDS + 10))
until curl -fsS "http://127.0.0.1:$port/status" | python3 -c '
import json, sys
probe = json.load(sys.stdin)["readings"].get("probe") or {}
sys.exit(0 if probe.get("status") == 200 else 1)'; do
  if [ $SECONDS -ge $deadline ]; then
    echo "the app probe never reached app.internal"; curl -sS "http://127.0.0.1:$port/status"; cat "$work/vigil.log"; exit 1
  fi
  sleep 0.3
done
echo "empty root: app.internal resolved from /etc/hosts, the app probe answered 200"

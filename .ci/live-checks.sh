#!/usr/bin/env bash
# Starts vigil on loopback, checks a live scrape with promtool, then starts a real Prometheus
# (loopback, temporary storage) that scrapes vigil and asks it, through its HTTP API, for
# `up == 1` and a vigil_ series. The shipped Prometheus rules are checked and unit-tested with
# promtool (broken copies must fail), loaded into that Prometheus (every rule must evaluate),
# and every query of the shipped Grafana dashboard must be accepted by it.
# Cleans up on every exit path; ends only the PIDs it started.
set -euo pipefail
vigil_bin=${1:?usage: live-checks.sh path/to/vigil}
here=$(cd "$(dirname "$0")" && pwd)
shipped=$here/../task-definition
# shellcheck source=lib.sh
source "$here/lib.sh"

# The shipped rules: valid, their unit tests pass, and both checks fail on a broken copy.
cp "$shipped/prometheus/vigil.rules.yml" "$shipped/prometheus/vigil.rules.test.yml" "$work/"
promtool check rules "$work/vigil.rules.yml"
(cd "$work" && promtool test rules vigil.rules.test.yml)
mkdir "$work/broken"
sed 's/vigil_restarts_recent >= 2/vigil_restarts_recent >= >= 2/' "$work/vigil.rules.yml" >"$work/broken/vigil.rules.yml"
cmp -s "$work/vigil.rules.yml" "$work/broken/vigil.rules.yml" && { echo "broken rules copy unchanged"; exit 1; }
if promtool check rules "$work/broken/vigil.rules.yml" >"$work/broken/check.log" 2>&1; then
  echo "promtool check rules accepted a broken expression"; exit 1
fi
echo "promtool check rules: a broken copy fails ($(grep -m1 -o 'parse error.*' "$work/broken/check.log" | cut -c1-80))"
sed 's/vigil_restarts_recent >= 2/vigil_restarts_recent >= 3/' "$work/vigil.rules.yml" >"$work/broken/vigil.rules.yml"
cp "$work/vigil.rules.test.yml" "$work/broken/"
if (cd "$work/broken" && promtool test rules vigil.rules.test.yml) >"$work/broken/test.log" 2>&1; then
  echo "promtool test rules passed with a changed threshold"; exit 1
fi
echo "promtool test rules: a changed threshold fails its unit test"

# A Task Metadata Service serving a real Fargate task's answers, so vigil exports its task's
# labels (vigil_task_info) and the dashboard's joins have series to join.
tmds_port=$(free_port)
python3 - "$tmds_port" "$here/../tests/fixtures/tmds" >"$work/tmds.log" 2>&1 <<'PY' &
import http.server, sys
port, fixtures = int(sys.argv[1]), sys.argv[2]
files = {"/task": "fargate-task-real-2025-04.json", "/task/stats": "fargate-task-stats-real-2025-04.json"}
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        name = files.get(self.path)
        if name is None:
            self.send_error(404)
            return
        body = open(f"{fixtures}/{name}", "rb").read()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()
PY
pids+=($!)
wait_for "http://127.0.0.1:$tmds_port/task" 10

vigil_port=$(free_port)
ECS_CONTAINER_METADATA_URI_V4=http://127.0.0.1:$tmds_port \
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
  evaluation_interval: 1s
rule_files: ["$work/vigil.rules.yml"]
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

# Every shipped rule evaluates against a live vigil (health "ok" after a few evaluations).
deadline=$((SECONDS + 20))
until curl -fsS "http://127.0.0.1:$prom_port/api/v1/rules" | python3 -c '
import json, sys
groups = json.load(sys.stdin)["data"]["groups"]
rules = [r for g in groups for r in g["rules"]]
bad = [(r["name"], r.get("health"), r.get("lastError")) for r in rules if r.get("health") != "ok"]
assert len(rules) >= 14, len(rules)
if bad:
    print("rules not ok yet:", bad, file=sys.stderr)
    sys.exit(1)
print(f"prometheus: all {len(rules)} shipped rules evaluate (health ok)")'; do
  [ $SECONDS -lt $deadline ] || { echo "shipped rules do not evaluate"; exit 1; }
  sleep 1
done

# Every dashboard query is accepted by the same Prometheus; a broken copy is not.
python3 "$here/check-dashboard.py" "http://127.0.0.1:$prom_port" "$shipped/grafana/vigil-dashboard.json" 8
python3 - "$shipped/grafana/vigil-dashboard.json" "$work/broken-dashboard.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
d["panels"][0]["targets"][0]["expr"] += " by by"
json.dump(d, open(sys.argv[2], "w"))
PY
if python3 "$here/check-dashboard.py" "http://127.0.0.1:$prom_port" "$work/broken-dashboard.json" 2>"$work/broken-dashboard.log"; then
  echo "a broken dashboard query was accepted"; exit 1
fi
echo "dashboard: a broken copy fails ($(head -c 120 "$work/broken-dashboard.log"))"

#!/usr/bin/env python3
"""Runs every query of a Grafana dashboard against a real Prometheus through its HTTP API.

usage: check-dashboard.py PROMETHEUS_URL DASHBOARD_JSON [MIN_WITH_SERIES]

Template variables become `.*` (every value), `label_values(SELECTOR, label)` queries its
selector. Exits 1 naming each query Prometheus rejects, or when fewer than MIN_WITH_SERIES
(default 0) queries returned series.
"""
import json
import re
import sys
import urllib.error
import urllib.parse
import urllib.request


def queries(node):
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "expr" and isinstance(value, str):
                yield value
            elif key == "query" and isinstance(value, dict) and isinstance(value.get("query"), str):
                yield value["query"]
            else:
                yield from queries(value)
    elif isinstance(node, list):
        for item in node:
            yield from queries(item)


def promql(query):
    query = re.sub(r"\$__(rate_)?interval", "1m", query)
    query = re.sub(r"\$\{?[a-zA-Z_]+\}?", ".*", query)
    match = re.fullmatch(r"\s*label_values\((.*),\s*[a-zA-Z_]+\)\s*", query, re.S)
    return match.group(1) if match else query


def main():
    url, path = sys.argv[1], sys.argv[2]
    min_with_series = int(sys.argv[3]) if len(sys.argv) > 3 else 0
    with open(path) as f:
        dashboard = json.load(f)
    failed, answered, with_data = 0, 0, 0
    for raw in queries(dashboard):
        expr = promql(raw)
        request = url.rstrip("/") + "/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                body = json.load(response)
        except urllib.error.HTTPError as error:
            body = json.load(error)
        if body.get("status") != "success":
            failed += 1
            print(f"dashboard query rejected: {raw!r}: {body.get('error')}", file=sys.stderr)
            continue
        answered += 1
        with_data += bool(body["data"]["result"])
    if answered == 0 and failed == 0:
        print(f"{path}: no queries found", file=sys.stderr)
        return 1
    print(f"{path}: {answered} queries accepted by Prometheus ({with_data} with series), {failed} rejected")
    if with_data < min_with_series:
        print(f"{path}: only {with_data} queries returned series, expected {min_with_series}", file=sys.stderr)
        return 1
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

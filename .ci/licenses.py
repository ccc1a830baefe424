#!/usr/bin/env python3
"""Licences, sources and bans of every crate in Cargo.lock, from `cargo metadata` alone (no
advisory database to fetch).

- licences: each package's SPDX expression must be satisfiable with the allowed licences
  (`OR` needs one side, `AND` both; the old `/` means `OR`);
- sources: only the workspace's own packages are local; every other package comes from one
  and the same registry, none from git;
- bans: crates vigil must never link (OpenSSL and native TLS: vigil speaks plain HTTP on the
  task's network).

usage: licenses.py [METADATA_JSON]   (default: runs `cargo metadata --locked`)
"""
import json
import re
import subprocess
import sys

ALLOWED = {
    "MIT", "Apache-2.0", "Apache-2.0 WITH LLVM-exception", "BSD-2-Clause", "BSD-3-Clause", "ISC",
    "Zlib", "Unicode-3.0", "Unicode-DFS-2016", "0BSD", "Unlicense", "BlueOak-1.0.0", "CC0-1.0",
}
BANNED = {"openssl", "openssl-sys", "native-tls"}


def tokens(expression):
    return re.findall(r"\(|\)|[A-Za-z0-9.\-+]+(?: WITH [A-Za-z0-9.\-+]+)?", expression.replace("/", " OR "))


def satisfiable(expression):
    """Evaluates an SPDX expression: `OR` binds looser than `AND`, parentheses group."""
    items = tokens(expression)
    position = 0

    def term():
        nonlocal position
        item = items[position]
        position += 1
        if item == "(":
            value = disjunction()
            position += 1  # ")"
            return value
        return item in ALLOWED

    def conjunction():
        nonlocal position
        value = term()
        while position < len(items) and items[position] == "AND":
            position += 1
            value = term() and value
        return value

    def disjunction():
        nonlocal position
        value = conjunction()
        while position < len(items) and items[position] == "OR":
            position += 1
            value = conjunction() or value
        return value

    result = disjunction()
    if position != len(items):
        raise ValueError(f"cannot parse licence expression {expression!r}")
    return result


def problems(metadata):
    found = []
    members = set(metadata["workspace_members"])
    registries = set()
    for package in metadata["packages"]:
        name = f"{package['name']} {package['version']}"
        if package["id"] in members:
            if package.get("license") is None:
                found.append(f"{name}: a workspace package without a licence")
            continue
        source = package.get("source")
        if source is None:
            found.append(f"{name}: a path dependency outside the workspace")
        elif source.startswith("git+"):
            found.append(f"{name}: from git ({source.split('#')[0]})")
        else:
            registries.add(source)
        if package["name"] in BANNED:
            found.append(f"{name}: banned")
        expression = package.get("license")
        if not expression:
            found.append(f"{name}: no SPDX licence expression")
            continue
        try:
            if not satisfiable(expression):
                found.append(f"{name}: licence {expression!r} is not allowed")
        except (ValueError, IndexError):
            found.append(f"{name}: cannot parse licence {expression!r}")
    if len(registries) > 1:
        found.append(f"packages come from {len(registries)} registries, expected one")
    return found


def main(argv):
    if argv:
        with open(argv[0]) as f:
            metadata = json.load(f)
    else:
        text = subprocess.run(
            ["cargo", "metadata", "--format-version", "1", "--locked"], check=True, capture_output=True, text=True
        ).stdout
        metadata = json.loads(text)
    found = problems(metadata)
    for problem in found:
        print(f"licences: {problem}", file=sys.stderr)
    if found:
        return 1
    count = len(metadata["packages"]) - len(metadata["workspace_members"])
    print(f"licences: {count} crates, every licence allowed, one registry, no git, nothing banned")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

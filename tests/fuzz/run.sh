#!/usr/bin/env bash
# Runs every fuzz target (tests/fuzz/fuzz_targets) for a number of executions, seeded from the
# kept corpus (tests/fuzz/corpus/<target>), the hand-made seeds (tests/fuzz/seeds/<target>) and
# the project's real fixtures (metadata responses, /proc and cgroup trees, a Prometheus answer).
# New inputs go into a temporary folder, so the kept corpus changes only by --keep.
#
# usage: tests/fuzz/run.sh [--runs N] [--keep] [target ...]
#   --runs N   executions per target (default 20000: the smoke run of .ci/run)
#   --keep     merge what the run found into tests/fuzz/corpus/<target> (minimised: only inputs
#              that add coverage, none over 16 KiB)
# A crash leaves its input in tests/fuzz/artifacts/<target>/ and fails the script: turn it into a
# regression test next to the parser, then fix it.
#
# Needs cargo-fuzz (installed when missing) and a C++ compiler (libFuzzer is built from source).
# Built without a sanitizer (-s none): the crate forbids unsafe code, and debug assertions (-a)
# turn integer overflow into a crash; this also works on the stable toolchain.
set -euo pipefail
cd "$(dirname "$0")/../.."
runs=20000
keep=false
targets=()
while [ $# -gt 0 ]; do
  case "$1" in
    --runs) runs=${2:?--runs needs a number}; shift 2 ;;
    --keep) keep=true; shift ;;
    -*) echo "unknown option $1" >&2; exit 2 ;;
    *) targets+=("$1"); shift ;;
  esac
done

command -v cargo-fuzz >/dev/null || cargo install --locked cargo-fuzz --version 0.13.2
dir=(--fuzz-dir tests/fuzz)
# cargo-fuzz asks for nightly-only flags only with a sanitizer; RUSTC_BOOTSTRAP covers the rest.
export RUSTC_BOOTSTRAP=1
[ ${#targets[@]} -gt 0 ] || mapfile -t targets < <(cargo fuzz list "${dir[@]}")
cargo fuzz build "${dir[@]}" -s none -a

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

seeds() {
  case "$1" in
    tmds)
      # Each real response alone, and each task with its stats (split at 0xFF, see the target).
      echo tests/fixtures/tmds
      mkdir -p "$work/pairs"
      for task in tests/fixtures/tmds/*-task-*.json; do
        stats=${task/-task-/-task-stats-}
        [ -f "$stats" ] || continue
        { cat "$task"; printf '\xff'; cat "$stats"; } >"$work/pairs/$(basename "$task")"
      done
      echo "$work/pairs" ;;
    procfs) echo tests/fixtures/local/proc ;;
    cgroup) echo tests/fixtures/local/cgroup-v1 tests/fixtures/local/cgroup-v2 tests/fixtures/local/proc/self ;;
    fleet) echo tests/fixtures/fleet ;;
  esac
  [ -d "tests/fuzz/seeds/$1" ] && echo "tests/fuzz/seeds/$1"
  [ -d "tests/fuzz/corpus/$1" ] && echo "tests/fuzz/corpus/$1"
  return 0
}

for target in "${targets[@]}"; do
  mkdir -p "$work/new/$target" "tests/fuzz/artifacts/$target"
  # shellcheck disable=SC2046
  cargo fuzz run "${dir[@]}" -s none -a "$target" "$work/new/$target" $(seeds "$target") -- \
    -runs="$runs" -max_len=16384 -timeout=10 -rss_limit_mb=1024 -print_final_stats=1 \
    2>"$work/$target.log" || { tail -n 40 "$work/$target.log"; echo "fuzz: $target failed" >&2; exit 1; }
  stats=$(grep -E '^stat::(number_of_executed_units|peak_rss_mb|new_units_added):' "$work/$target.log" | tr '\n' ' ')
  cov=$(grep -oE 'cov: [0-9]+' "$work/$target.log" | tail -n 1)
  echo "fuzz: $target ok: $stats $cov"
  if $keep; then
    mkdir -p "tests/fuzz/corpus/$target" "$work/merged-$target"
    cargo fuzz run "${dir[@]}" -s none -a "$target" "$work/merged-$target" "tests/fuzz/corpus/$target" "$work/new/$target" \
      -- -merge=1 -max_len=16384 2>>"$work/$target.log"
    rm -rf "tests/fuzz/corpus/$target"
    cp -r "$work/merged-$target" "tests/fuzz/corpus/$target"
    echo "fuzz: $target corpus kept: $(find "tests/fuzz/corpus/$target" -type f | wc -l) inputs"
  fi
done

#!/usr/bin/env python3
"""Score NAB-format result folders against a NAB dataset directory, with NAB's scoring rules.

usage:
  python3 models/nab/score.py --dataset DATASET_DIR RESULTS_DIR [RESULTS_DIR ...] [--json OUT]
  python3 models/nab/score.py --dataset DATASET_DIR --sanity

DATASET_DIR holds data/, labels/combined_windows.json and config/profiles.json (NAB's layout).
Each RESULTS_DIR holds one CSV per data file with columns timestamp,value,anomaly_score,label at
the data file's relative path (e.g. RESULTS_DIR/realKnownCause/nyc_taxi.csv); NAB's own naming,
<category>/<detector>_<name>.csv, is accepted too. Only the data files present in DATASET_DIR are
scored, and normalisation counts only their windows.

For each detector and profile it prints the normalised score (null detector 0, perfect 100), the
raw score, the optimised threshold ("never" when never firing is best) and the counts: windows
detected (TP), false-positive records (FP) and windows missed (FN).

--sanity also scores two built-in detectors: the null detector (never fires; scores 0) and one
that fires exactly at the first record of every window (scores 100 unless a window starts
inside the probationary period).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import nab  # noqa: E402


def sanity_scores(truth):
    null = {rel: np.zeros(t.n) for rel, t in truth.items()}
    start = {}
    for rel, t in truth.items():
        s = np.zeros(t.n)
        for a, _ in t.windows:
            s[a] = 1.0
        start[rel] = s
    return {"null": null, "window_start": start}


def fmt_row(name, res):
    cells = [f"{name:<24}"]
    for p in nab.PROFILES:
        r = res[p]
        thr = "never" if math.isinf(r.threshold) else f"{r.threshold:.6g}"
        cells.append(f"{r.normalised:8.2f} (raw {r.raw:8.3f}, thr {thr}, TP {r.counts.tp} FP {r.counts.fp} FN {r.counts.fn})")
    return "  ".join(cells)


def as_json(res):
    return {p: {"normalised": r.normalised, "raw": r.raw,
                "threshold": None if math.isinf(r.threshold) else r.threshold,
                "tp": r.counts.tp, "fp": r.counts.fp, "fn": r.counts.fn, "tn": r.counts.tn,
                "windows_dropped": r.counts.dropped}
            for p, r in res.items()}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", required=True, help="NAB dataset directory (data/, labels/, config/)")
    ap.add_argument("results", nargs="*", help="result folders to score (one detector each)")
    ap.add_argument("--sanity", action="store_true", help="score the built-in null and window-start detectors")
    ap.add_argument("--json", help="write all scores to this JSON file")
    args = ap.parse_args(argv)
    if not args.results and not args.sanity:
        ap.error("give result folders or --sanity")

    truth = nab.load_truth(args.dataset)
    profiles = nab.load_profiles(args.dataset)
    n_windows = sum(len(t.windows) for t in truth.values())
    n_dropped = n_windows - sum(t.n_scored_windows for t in truth.values())
    dropped = f" ({n_dropped} inside the probationary period, not scored)" if n_dropped else ""
    print(f"{len(truth)} data files, {n_windows} windows{dropped}, "
          f"{sum(t.n for t in truth.values())} records; columns: " + "  ".join(nab.PROFILES))
    report = {}
    if args.sanity:
        for name, scores in sanity_scores(truth).items():
            res = nab.score_scores(truth, scores, profiles)
            report[name] = as_json(res)
            print(fmt_row(name, res))
    for d in args.results:
        name = os.path.basename(os.path.normpath(d))
        res = nab.score_scores(truth, nab.load_results(d, truth), profiles)
        report[name] = as_json(res)
        print(fmt_row(name, res))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2, sort_keys=True)
            f.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

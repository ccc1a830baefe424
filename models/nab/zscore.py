#!/usr/bin/env python3
"""Rolling z-score baseline detector, writing NAB-format results for every data file.

usage: python3 models/nab/zscore.py --dataset DATASET_DIR --out RESULTS_DIR [--window 288]

For each record i the detector looks only at the `window` records before it (no look-ahead,
nothing tuned per file): z = |x_i - mean| / std over x[i-window:i], anomaly_score = z / (1 + z),
a monotone map of z into [0, 1). Until `window` records have been seen the score is 0. A window
of constant values (std 0) gives z = 0 if x_i equals that value and z = +inf (score 1) otherwise.

Output: RESULTS_DIR/<category>/<name>.csv with columns timestamp,value,anomaly_score,label, where
label is 1 inside a labelled anomaly window (informational; the scorer reads the windows itself).
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import sys

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import nab  # noqa: E402

CHUNK = 4096


def rolling_zscore(x: np.ndarray, window: int) -> np.ndarray:
    """z_i = |x_i - mean(x[i-w:i])| / std(x[i-w:i]); NaN for i < w."""
    x = np.asarray(x, dtype=float)
    n = len(x)
    z = np.full(n, np.nan)
    if n <= window:
        return z
    past = sliding_window_view(x[:-1], window)  # row j = x[j : j+w], predicts x[j+w]
    for a in range(0, len(past), CHUNK):
        rows = past[a:a + CHUNK]
        mean = rows.mean(axis=1)
        std = rows.std(axis=1)
        cur = x[window + a: window + a + len(rows)]
        dev = np.abs(cur - mean)
        with np.errstate(divide="ignore", invalid="ignore"):
            zz = np.where(std > 0, dev / std, np.where(dev > 0, np.inf, 0.0))
        z[window + a: window + a + len(rows)] = zz
    return z


def anomaly_score(z: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        s = np.where(np.isnan(z), 0.0, np.where(np.isinf(z), 1.0, z / (1.0 + z)))
    return np.clip(s, 0.0, 1.0)


def write_results(path: str, rows_ts: list[str], values: list[str], scores: np.ndarray, labels: np.ndarray):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["timestamp", "value", "anomaly_score", "label"])
        for t, v, s, l in zip(rows_ts, values, scores, labels):
            w.writerow([t, v, repr(float(s)), int(l)])


def run(dataset_dir: str, out_dir: str, window: int) -> int:
    with open(os.path.join(dataset_dir, "labels", "combined_windows.json")) as f:
        windows = json.load(f)
    files = nab.data_files(dataset_dir)
    for rel in files:
        with open(os.path.join(dataset_dir, "data", rel), newline="") as f:
            rows = list(csv.DictReader(f))
        ts_text = [r["timestamp"] for r in rows]
        val_text = [r["value"] for r in rows]
        x = np.array([float(v) for v in val_text])
        scores = anomaly_score(rolling_zscore(x, window))
        labels = np.zeros(len(rows), dtype=int)
        for s, e in nab.windows_to_indices([nab.parse_ts(t) for t in ts_text], windows.get(rel, [])):
            labels[s:e + 1] = 1
        write_results(os.path.join(out_dir, rel), ts_text, val_text, scores, labels)
    return len(files)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", required=True, help="NAB dataset directory (data/, labels/)")
    ap.add_argument("--out", required=True, help="results folder to write")
    ap.add_argument("--window", type=int, default=288,
                    help="records of history (default 288: one day of 5-minute records)")
    args = ap.parse_args(argv)
    if args.window < 2:
        ap.error("--window must be >= 2")
    n = run(args.dataset, args.out, args.window)
    print(f"wrote {n} result files to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

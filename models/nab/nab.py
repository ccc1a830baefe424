"""NAB-style scoring (Numenta Anomaly Benchmark), written from NAB's published description.

This module is the library; `score.py` is the command line. Pure Python 3.11 + numpy.

Rules implemented (see README.md in this folder for the deviations from NAB):

* Ground truth is a list of anomaly windows per data file (`labels/combined_windows.json`),
  each `[start, end]` as timestamps; a window covers every record whose timestamp lies in
  `[start, end]` (both ends included).
* A detection is a record whose `anomaly_score >= threshold`.
* Records in the probationary period (the first `min(floor(0.15 * n), 750)` records of a file)
  are never scored: detections there count for nothing.
* Inside a window only the earliest detection counts: it scores `A_TP * sigma(y)`, where `y` is
  the detection's relative position in the window (`-1` at the window's first record, close to 0
  at its last) and `sigma(y) = 2 / (1 + exp(5 y)) - 1` is NAB's scaled sigmoid. Later detections
  in the same window are ignored.
* A window with no detection scores `-A_FN`.
* A detection outside every window is a false positive. If a window precedes it, it scores
  `A_FP * sigma(y)` with `y = (i - last index of that window) / window length` (> 0, so the
  sigmoid is negative: small just after the window, close to -1 far from it); with no window
  before it, it scores `-A_FP`.
* A detector's raw score for a profile is the sum over all files. The threshold is chosen per
  detector and per profile to maximise that sum (an exact sweep over every distinct score).
* Normalised score = 100 * (S - S_null) / (S_perfect - S_null), with
  `S_null = -A_FN * number of windows` (a detector that never fires) and
  `S_perfect = A_TP * number of windows`, counted over the files present only.
"""
from __future__ import annotations

import csv
import json
import math
import os
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np

PROFILES = ("standard", "reward_low_FP_rate", "reward_low_FN_rate")
PROBATION_PERCENT = 0.15
PROBATION_CAP = 750  # = 0.15 * 5000 records


def scaled_sigmoid(y):
    """NAB's scaled sigmoid: +1 (early) .. 0 (window end) .. -1 (far after the window).

    Accepts a float or a numpy array. For y > 3 the value is taken as exactly -1.
    """
    y = np.asarray(y, dtype=float)
    out = 2.0 / (1.0 + np.exp(np.minimum(5.0 * y, 700.0))) - 1.0
    out = np.where(y > 3.0, -1.0, out)
    return float(out) if out.ndim == 0 else out


def probation_length(n_records: int) -> int:
    return int(min(math.floor(PROBATION_PERCENT * n_records), PROBATION_PERCENT * 5000))


@dataclass(frozen=True)
class Profile:
    name: str
    tp: float
    fp: float
    fn: float
    tn: float = 1.0


def load_profiles(dataset_dir: str) -> dict[str, Profile]:
    with open(os.path.join(dataset_dir, "config", "profiles.json")) as f:
        raw = json.load(f)
    out = {}
    for name, body in raw.items():
        cm = body["CostMatrix"]
        out[name] = Profile(name, cm["tpWeight"], cm["fpWeight"], cm["fnWeight"], cm.get("tnWeight", 1.0))
    return out


def parse_ts(s: str) -> datetime:
    s = s.strip()
    for fmt in ("%Y-%m-%d %H:%M:%S.%f", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S.%f", "%Y-%m-%dT%H:%M:%S"):
        try:
            return datetime.strptime(s, fmt)
        except ValueError:
            pass
    raise ValueError(f"unrecognised timestamp {s!r}")


@dataclass
class FileTruth:
    """Per-file ground truth, resolved to record indices."""
    name: str                       # relative path, e.g. "realKnownCause/nyc_taxi.csv"
    n: int                          # number of records
    windows: list[tuple[int, int]]  # inclusive index ranges
    probation: int = 0
    # derived per-record arrays (filled by prepare())
    window_id: np.ndarray = field(default=None, repr=False)   # -1 outside windows
    weight: np.ndarray = field(default=None, repr=False)      # sigma(y) of each record

    def prepare(self) -> "FileTruth":
        wid = np.full(self.n, -1, dtype=np.int64)
        sig = np.empty(self.n, dtype=float)
        idx = np.arange(self.n)
        prev_end, prev_len = None, None
        cursor = 0
        for k, (s, e) in enumerate(self.windows):
            length = e - s + 1
            # records between the previous window (or the file start) and this window
            gap = idx[cursor:s]
            if prev_end is None:
                sig[cursor:s] = -1.0
            else:
                sig[cursor:s] = scaled_sigmoid((gap - prev_end) / prev_len)
            inside = idx[s:e + 1]
            wid[s:e + 1] = k
            sig[s:e + 1] = scaled_sigmoid(-(e - inside + 1) / length)
            prev_end, prev_len, cursor = e, length, e + 1
        tail = idx[cursor:]
        sig[cursor:] = -1.0 if prev_end is None else scaled_sigmoid((tail - prev_end) / prev_len)
        self.window_id, self.weight = wid, sig
        return self


def windows_to_indices(timestamps: list[datetime], windows: list[list[str]]) -> list[tuple[int, int]]:
    """Inclusive record-index range of each window: the records whose timestamp lies in [start, end].

    NAB's data is not strictly ordered (daylight-saving repeats, one backwards jump), so membership
    is decided record by record, as a timestamp comparison, and must come out contiguous.
    """
    ts = np.array([t.timestamp() for t in timestamps])
    out = []
    for start, end in windows:
        a, b = parse_ts(start).timestamp(), parse_ts(end).timestamp()
        hit = np.flatnonzero((ts >= a) & (ts <= b))
        if hit.size == 0:
            raise ValueError(f"window {start}..{end} covers no record")
        s, e = int(hit[0]), int(hit[-1])
        if hit.size != e - s + 1:
            raise ValueError(f"window {start}..{end} is not contiguous in the file")
        out.append((s, e))
    out.sort()
    for (s0, e0), (s1, _) in zip(out, out[1:]):
        if s1 <= e0:
            raise ValueError("overlapping windows")
    return out


def read_timeseries(path: str) -> tuple[list[datetime], np.ndarray]:
    with open(path, newline="") as f:
        r = csv.DictReader(f)
        ts, vals = [], []
        for row in r:
            ts.append(parse_ts(row["timestamp"]))
            vals.append(float(row["value"]))
    return ts, np.array(vals, dtype=float)


def data_files(dataset_dir: str) -> list[str]:
    """Relative paths ("category/name.csv") of every data file present."""
    root = os.path.join(dataset_dir, "data")
    out = []
    for dirpath, _, files in os.walk(root):
        for fn in files:
            if fn.endswith(".csv"):
                out.append(os.path.relpath(os.path.join(dirpath, fn), root).replace(os.sep, "/"))
    return sorted(out)


def load_truth(dataset_dir: str, files: list[str] | None = None) -> dict[str, FileTruth]:
    """Ground truth for the data files present (the label file may list more; those are skipped)."""
    with open(os.path.join(dataset_dir, "labels", "combined_windows.json")) as f:
        all_windows = json.load(f)
    files = data_files(dataset_dir) if files is None else files
    truth = {}
    for rel in files:
        if rel not in all_windows:
            raise ValueError(f"{rel}: no entry in combined_windows.json")
        ts, _ = read_timeseries(os.path.join(dataset_dir, "data", rel))
        t = FileTruth(rel, len(ts), windows_to_indices(ts, all_windows[rel]), probation_length(len(ts)))
        truth[rel] = t.prepare()
    return truth


def find_result_file(results_dir: str, rel: str) -> str | None:
    """`results_dir/<category>/<name>.csv`, or NAB's own naming `<category>/<detector>_<name>.csv`."""
    direct = os.path.join(results_dir, rel)
    if os.path.isfile(direct):
        return direct
    cat, name = os.path.split(rel)
    d = os.path.join(results_dir, cat)
    if os.path.isdir(d):
        hits = sorted(fn for fn in os.listdir(d) if fn.endswith("_" + name))
        if len(hits) == 1:
            return os.path.join(d, hits[0])
        if len(hits) > 1:
            raise ValueError(f"{rel}: several candidate result files in {d}: {hits}")
    return None


def read_scores(path: str, truth: FileTruth) -> np.ndarray:
    with open(path, newline="") as f:
        r = csv.DictReader(f)
        if r.fieldnames is None or "anomaly_score" not in r.fieldnames:
            raise ValueError(f"{path}: no anomaly_score column")
        scores = np.array([float(row["anomaly_score"]) for row in r], dtype=float)
    if len(scores) != truth.n:
        raise ValueError(f"{path}: {len(scores)} rows, data file has {truth.n}")
    if np.any(~np.isfinite(scores)):
        raise ValueError(f"{path}: non-finite anomaly_score")
    return scores


def load_results(results_dir: str, truth: dict[str, FileTruth]) -> dict[str, np.ndarray]:
    out, missing = {}, []
    for rel, t in truth.items():
        p = find_result_file(results_dir, rel)
        if p is None:
            missing.append(rel)
        else:
            out[rel] = read_scores(p, t)
    if missing:
        raise FileNotFoundError(f"{len(missing)} result file(s) missing in {results_dir}, e.g. {missing[:3]}")
    return out


# --------------------------------------------------------------------------- scoring

@dataclass
class Counts:
    tp: int = 0
    fp: int = 0
    fn: int = 0
    tn: int = 0


def score_detections(truth: FileTruth, detected: np.ndarray, profile: Profile) -> tuple[float, Counts]:
    """Raw NAB score of one file for a boolean detection vector."""
    det = np.asarray(detected, dtype=bool).copy()
    det[: truth.probation] = False
    score, c = 0.0, Counts()
    for k, (s, e) in enumerate(truth.windows):
        hits = np.flatnonzero(det[s:e + 1])
        if hits.size:
            score += profile.tp * truth.weight[s + hits[0]]
            c.tp += 1
        else:
            score -= profile.fn
            c.fn += 1
    outside = det & (truth.window_id < 0)
    score += profile.fp * float(truth.weight[outside].sum())
    c.fp = int(outside.sum())
    scored = np.ones(truth.n, dtype=bool)
    scored[: truth.probation] = False
    c.tn = int((scored & ~det & (truth.window_id < 0)).sum())
    return score, c


def score_at_threshold(truth: dict[str, FileTruth], scores: dict[str, np.ndarray], profile: Profile,
                       threshold: float) -> tuple[float, Counts]:
    total, tc = 0.0, Counts()
    for rel, t in truth.items():
        s, c = score_detections(t, scores[rel] >= threshold, profile)
        total += s
        tc.tp += c.tp; tc.fp += c.fp; tc.fn += c.fn; tc.tn += c.tn
    return total, tc


def optimise_threshold(truth: dict[str, FileTruth], scores: dict[str, np.ndarray],
                       profile: Profile) -> tuple[float, float]:
    """Exact threshold search: the threshold (one for all files) maximising the summed raw score.

    Lowering the threshold past a score value adds the records holding that value. A false
    positive adds a fixed amount; a window's contribution depends only on its earliest detected
    record, so one sweep over the records in descending score order with a per-window "earliest
    so far" gives the total for every distinct threshold. Returns (threshold, raw score); with no
    threshold better than never firing, the threshold is +inf (the null detector).
    """
    n_windows = sum(len(t.windows) for t in truth.values())
    base = -profile.fn * n_windows  # nothing detected
    vals, kinds, gains, wkeys, widx = [], [], [], [], []
    wbase = 0
    for rel, t in truth.items():
        sc = scores[rel]
        keep = np.arange(t.n) >= t.probation
        i = np.flatnonzero(keep)
        vals.append(sc[i])
        inside = t.window_id[i] >= 0
        kinds.append(inside)
        gains.append(np.where(inside, profile.tp * t.weight[i], profile.fp * t.weight[i]))
        wkeys.append(np.where(inside, t.window_id[i] + wbase, -1))
        widx.append(i)
        wbase += len(t.windows)
    vals = np.concatenate(vals); inside = np.concatenate(kinds); gains = np.concatenate(gains)
    wkey = np.concatenate(wkeys); idx = np.concatenate(widx)
    order = np.argsort(-vals, kind="stable")
    vals, inside, gains, wkey, idx = vals[order], inside[order], gains[order], wkey[order], idx[order]
    # per window: current earliest detected record index and its gain (None = missed)
    earliest = np.full(wbase, np.iinfo(np.int64).max, dtype=np.int64)
    cur_gain = np.full(wbase, -profile.fn, dtype=float)
    total = base
    best_thr, best = math.inf, base
    n = len(vals)
    j = 0
    while j < n:
        v = vals[j]
        k = j
        while k < n and vals[k] == v:
            if inside[k]:
                w = wkey[k]
                if idx[k] < earliest[w]:
                    earliest[w] = idx[k]
                    total += gains[k] - cur_gain[w]
                    cur_gain[w] = gains[k]
            else:
                total += gains[k]
            k += 1
        # tiny tolerance so float noise does not pick a lower threshold for an equal score
        if total > best + 1e-12:
            best, best_thr = total, float(v)
        j = k
    return best_thr, best


def normalise(raw: float, n_windows: int, profile: Profile) -> float:
    null = -profile.fn * n_windows
    perfect = profile.tp * n_windows
    return 100.0 * (raw - null) / (perfect - null)


@dataclass
class ProfileResult:
    profile: str
    threshold: float
    raw: float
    normalised: float
    counts: Counts


def score_detector(dataset_dir: str, results_dir: str, profiles: list[str] | None = None,
                   truth: dict[str, FileTruth] | None = None) -> dict[str, ProfileResult]:
    truth = load_truth(dataset_dir) if truth is None else truth
    scores = load_results(results_dir, truth)
    return score_scores(truth, scores, load_profiles(dataset_dir), profiles)


def score_scores(truth, scores, profile_table, profiles=None) -> dict[str, ProfileResult]:
    n_windows = sum(len(t.windows) for t in truth.values())
    out = {}
    for name in profiles or PROFILES:
        p = profile_table[name]
        thr, raw = optimise_threshold(truth, scores, p)
        raw_check, counts = score_at_threshold(truth, scores, p, thr)
        if not math.isclose(raw, raw_check, rel_tol=1e-9, abs_tol=1e-9):
            raise AssertionError(f"sweep ({raw}) and direct scoring ({raw_check}) disagree")
        out[name] = ProfileResult(name, thr, raw, normalise(raw, n_windows, p), counts)
    return out

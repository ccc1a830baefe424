"""NAB scoring (Numenta Anomaly Benchmark), written from NAB's published description.

This module is the library; `score.py` is the command line. Pure Python 3.11 + numpy. No NAB code
is used; the rules below were checked against the official scorer's numbers (README.md here).

Rules implemented:

* Ground truth is a list of anomaly windows per data file (`labels/combined_windows.json`), each
  `[start, end]` as timestamps. Both bounds must be timestamps of records of the file; the window
  runs from the first record carrying `start` to the first record carrying `end` (by position).
* A detection is a record whose `anomaly_score >= threshold`.
* The probationary period is the first `min(floor(0.15 * n), 0.15 * 5000)` records of a file of
  `n` records: they are never scored. A window that lies entirely inside it is dropped (it is
  neither detected nor missed); a window that starts inside it can only be detected by its
  records after it.
* Inside a window of length `L` ending at record `e`, only the earliest detection counts: record
  `i` scores `A_TP * sigma(-(e - i + 1) / L) / sigma(-1)`, so detecting at the window's first
  record earns exactly `A_TP`. `sigma(y) = 2 / (1 + exp(5 y)) - 1` (and -1 for `y > 3`) is NAB's
  scaled sigmoid. Later detections in the same window are ignored.
* A scored window with no detection scores `-A_FN`.
* A detection outside every window is a false positive. After a window (right edge `e`, length
  `L`) it scores `A_FP * sigma((i - e) / (L - 1))`; with no window before it, `-A_FP`.
* A detector's raw score for a profile is the sum over all files. One threshold per detector and
  profile, the one maximising that sum: every distinct score is tried, ties go to the highest
  threshold, and "never fire" (threshold +inf here, 1.1 in NAB) is the first candidate.
* Normalised score = 100 * (S - S_null) / (S_perfect - S_null), with `S_null` the score of the
  detector that never fires (`-A_FN` times the number of windows not dropped) and
  `S_perfect = A_TP * number of windows` (all windows of the files scored, dropped ones too).
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


SIGMA_FIRST = 2.0 / (1.0 + math.exp(-5.0)) - 1.0  # sigma(-1) = 0.98661...: a window's first record


def probation_length(n_records: int) -> int:
    """Records not scored at the start of a file: min(floor(0.15 n), 0.15 * 5000 = 750)."""
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
    windows: list[tuple[int, int]]  # inclusive index ranges, sorted, not overlapping
    probation: int = 0
    # derived (filled by prepare())
    window_id: np.ndarray = field(default=None, repr=False)   # -1 outside windows
    weight: np.ndarray = field(default=None, repr=False)      # per-record weight, see prepare()
    scored: list[bool] = field(default=None, repr=False)      # per window: False = dropped

    def prepare(self) -> "FileTruth":
        """Per-record weights, before multiplying by the profile's A_TP or A_FP.

        Inside a window (records s..e, L = e - s + 1): sigma(-(e - i + 1) / L) / sigma(-1), which
        is exactly 1 at the window's first record. After a window: sigma((i - e) / (L - 1)).
        Before the first window: -1. A window lying entirely in the probationary period is
        marked not scored (dropped).
        """
        wid = np.full(self.n, -1, dtype=np.int64)
        w = np.full(self.n, -1.0, dtype=float)
        idx = np.arange(self.n, dtype=float)
        prev_end = None
        for k, (s, e) in enumerate(self.windows):
            if not (0 <= s <= e < self.n):
                raise ValueError(f"{self.name}: window {k} ({s}..{e}) outside the file's {self.n} records")
            if prev_end is not None and s <= prev_end:
                raise ValueError(f"{self.name}: windows overlap or are not sorted")
            prev_end = e
        bounds = list(self.windows) + [(self.n, self.n)]
        for k, (s, e) in enumerate(self.windows):
            length = e - s + 1
            wid[s:e + 1] = k
            w[s:e + 1] = scaled_sigmoid(-(e - idx[s:e + 1] + 1) / length) / SIGMA_FIRST
            after = slice(e + 1, bounds[k + 1][0])   # up to the next window or the file's end
            if after.stop > after.start:
                if length == 1:
                    # NAB's scorer divides by (L - 1) here and fails; refuse rather than guess.
                    raise ValueError(f"{self.name}: a one-record window followed by records "
                                     "cannot be scored (the false-positive distance divides by L - 1 = 0)")
                w[after] = scaled_sigmoid((idx[after] - e) / (length - 1))
        self.window_id, self.weight = wid, w
        self.scored = [e >= self.probation for _, e in self.windows]
        return self

    @property
    def n_scored_windows(self) -> int:
        return sum(self.scored)


def windows_to_indices(timestamps: list[datetime], windows: list[list[str]]) -> list[tuple[int, int]]:
    """Inclusive record-index range of each window, NAB's way: from the first record whose timestamp
    equals the window's start to the first record whose timestamp equals its end.

    NAB's data is not strictly ordered (daylight-saving repeats, one backwards jump), so the range is
    positional: every record between those two is in the window. A bound that is not the timestamp
    of a record is an error (NAB's scorer would silently skip such a window, or fail).
    """
    first: dict[datetime, int] = {}
    for i, t in enumerate(timestamps):
        first.setdefault(t, i)
    out = []
    for start, end in windows:
        a, b = parse_ts(start), parse_ts(end)
        if a not in first or b not in first:
            raise ValueError(f"window {start}..{end}: "
                             f"{'start' if a not in first else 'end'} is not the timestamp of a record")
        s, e = first[a], first[b]
        if e < s:
            raise ValueError(f"window {start}..{end} ends before it starts in the file")
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
    tp: int = 0       # windows detected
    fp: int = 0       # false-positive records
    fn: int = 0       # windows missed
    tn: int = 0       # scored records outside windows that did not fire
    dropped: int = 0  # windows lying entirely in the probationary period (not scored)

    def add(self, other: "Counts") -> None:
        self.tp += other.tp; self.fp += other.fp; self.fn += other.fn
        self.tn += other.tn; self.dropped += other.dropped


def score_detections(truth: FileTruth, detected: np.ndarray, profile: Profile) -> tuple[float, Counts]:
    """Raw NAB score of one file for a boolean detection vector."""
    det = np.asarray(detected, dtype=bool).copy()
    det[: truth.probation] = False
    score, c = 0.0, Counts()
    for k, (s, e) in enumerate(truth.windows):
        if not truth.scored[k]:
            c.dropped += 1
            continue
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
        tc.add(c)
    return total, tc


def null_score(truth: dict[str, FileTruth], profile: Profile) -> float:
    """Raw score of the detector that never fires: -A_FN per window that is not dropped."""
    return -profile.fn * sum(t.n_scored_windows for t in truth.values())


def optimise_threshold(truth: dict[str, FileTruth], scores: dict[str, np.ndarray],
                       profile: Profile) -> tuple[float, float]:
    """The threshold (one for all files) maximising the summed raw score, and that score.

    Candidates: "never fire" first (returned as +inf), then every distinct anomaly_score of a
    scored record, from the highest down; a candidate replaces the best so far only if it scores
    strictly more (beyond 1e-12, float rounding), so ties go to the highest threshold.

    Lowering the threshold past a score value adds the records holding that value. A false
    positive adds a fixed amount; a window's contribution depends only on its earliest detected
    record, so one sweep over the records in descending score order with a per-window "earliest
    so far" gives the total at every candidate.
    """
    base = null_score(truth, profile)  # nothing detected
    vals, kinds, gains, wkeys, widx = [], [], [], [], []
    wbase = 0
    for rel, t in truth.items():
        sc = scores[rel]
        i = np.arange(t.probation, t.n)  # probationary records are never scored
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
    # per window: earliest detected record so far and its gain (-A_FN while missed). A dropped
    # window has no scored record, so it never appears here and its -A_FN is not in `base`.
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
        if total > best + 1e-12:
            best, best_thr = total, float(v)
        j = k
    return best_thr, best


def normalise(raw: float, n_windows: int, profile: Profile, null_raw: float | None = None) -> float:
    """100 (raw - null) / (perfect - null), perfect = A_TP * n_windows (every window, dropped ones
    too, as NAB counts them), null = the never-firing detector's raw score (default -A_FN *
    n_windows, i.e. no window dropped)."""
    null = -profile.fn * n_windows if null_raw is None else null_raw
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
        out[name] = ProfileResult(name, thr, float(raw),
                                  float(normalise(raw, n_windows, p, null_score(truth, p))), counts)
    return out

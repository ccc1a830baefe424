"""Raw recordings -> the model's normalised 64-wide input vectors.

The normalisation is the agent's (`agent/judge/vector.rs`); `vigil vectors <raw.csv>` prints it.
`Vectoriser` here mirrors it step for step (a test compares the two on the same recordings) so
training does not need a Rust build; `from_vigil` runs the binary instead.
"""
from __future__ import annotations

import csv
import math
import subprocess

import numpy as np

CHANNELS = ["memory_ratio", "fds_ratio", "threads_ratio", "cpu_ratio", "memory_pressure",
            "accept_queue_log", "probe_latency_log", "probe_failed"]
WINDOW = 8
WIDTH = len(CHANNELS) * WINDOW
MIN_STD = [0.01, 0.005, 0.005, 0.02, 0.01, 0.1, 0.1, 0.05]
CLIP = 6.0
WARMUP_TICKS = 60
HALF_LIFE_TICKS = 600.0


def read_raw(path: str):
    """A VIGIL_RECORD CSV -> (unix_ms int64 [n], raw float64 [n, 8] with NaN for missing)."""
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    header = rows[0]
    if header != ["unix_ms"] + CHANNELS:
        raise ValueError(f"{path}: unexpected header {header}")
    ms = np.array([int(r[0]) for r in rows[1:]], dtype=np.int64)
    raw = np.array([[float(v) if v != "" else math.nan for v in r[1:9]] for r in rows[1:]], dtype=np.float64)
    return ms, raw.reshape(-1, len(CHANNELS))


class Vectoriser:
    """The mirror of agent/judge/vector.rs `Vectoriser` (f64 statistics, f32 outputs)."""

    def __init__(self):
        c = len(CHANNELS)
        self.count = [0] * c
        self.mean = [0.0] * c
        self.variance = [0.0] * c
        self.forget = 1.0 - 0.5 ** (1.0 / HALF_LIFE_TICKS)

    def row(self, raw_row) -> list:
        """One tick's normalised channels (against the statistics so far, then updated)."""
        row = [0.0] * len(CHANNELS)
        count, mean, variance = self.count, self.mean, self.variance
        for c, x in enumerate(raw_row):
            x = float(x)
            if not math.isfinite(x):
                continue
            if count[c] > 0:
                std = max(math.sqrt(variance[c]), MIN_STD[c])
                row[c] = min(max((x - mean[c]) / std, -CLIP), CLIP)
            count[c] += 1
            weight = 1.0 / count[c] if count[c] <= WARMUP_TICKS else self.forget
            delta = x - mean[c]
            mean[c] += weight * delta
            variance[c] = (1.0 - weight) * (variance[c] + weight * delta * delta)
        return row


def vectorise(ms: np.ndarray, raw: np.ndarray):
    """(unix_ms [m], vectors f32 [m, 64]) for every tick once the window is full: vector k holds
    the normalised ticks k .. k + WINDOW - 1, time-major, and is stamped with tick k + WINDOW - 1."""
    v = Vectoriser()
    rows = np.array([v.row(r) for r in raw.tolist()], dtype=np.float64).reshape(-1, len(CHANNELS))
    rows = rows.astype(np.float32)  # Rust: `as f32` of the clamped f64, round to nearest
    m = len(rows) - WINDOW + 1
    if m <= 0:
        return np.zeros(0, np.int64), np.zeros((0, WIDTH), np.float32)
    idx = np.arange(m)[:, None] + np.arange(WINDOW)[None, :]
    return np.asarray(ms[WINDOW - 1:], np.int64), rows[idx].reshape(m, WIDTH)


def from_vigil(binary: str, path: str):
    """Runs `vigil vectors <path>`: CSV `unix_ms,v0..v63` (an optional header line)."""
    text = subprocess.run([binary, "vectors", path], check=True, capture_output=True, text=True).stdout
    ms, vecs = [], []
    for line in text.splitlines():
        if not line or not line[0].isdigit():
            continue
        fields = line.split(",")
        ms.append(int(fields[0]))
        vecs.append([float(v) for v in fields[1:]])
    vecs = np.array(vecs, dtype=np.float32).reshape(-1, WIDTH)
    return np.array(ms, dtype=np.int64), vecs

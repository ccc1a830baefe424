"""Synthetic raw recordings in the format of vigil's VIGIL_RECORD (`unix_ms,<8 channels>`, an
empty field for a missing reading), one row per 1 s tick, from fixed seeds.

Healthy recordings: a traffic level per recording (low, medium, high load) with slow daily-like
drift, bursts (traffic x1.5–3 for 10–90 s), a garbage-collected heap (memory climbs with
allocation and drops at each collection: a sawtooth), fds and threads that follow traffic,
a little accept-queue backlog in bursts, probe latency that grows with load, and rare single
failed probes. Per recording, some channels may be absent for the whole recording (no PSI,
no listener seen, no health probe), readings go missing at random ticks, and memory may be
refreshed only every 10 s (the Fargate metadata endpoint) instead of every tick.

Faulty recordings: a healthy stretch, then from `fault_start` one of
  memory_leak    memory climbs linearly to the limit (pressure rises near it; the GC
                 sawtooth continues on top)
  fd_leak        fds climb to the limit
  thread_leak    threads climb to the limit
  hang           the probe times out (probe_failed 1, no latency), CPU drops to idle or
                 spins at 100 %, the accept queue fills
  latency        probe latency degrades (x3–x20 over 1–5 minutes), CPU rises
  cpu_saturation CPU pinned near 1, latency and accept queue up
The generator's parameters are the only "ground truth"; these are stand-ins for real
recordings, not measurements of a service.
"""
from __future__ import annotations

import math
import os

import numpy as np

CHANNELS = ["memory_ratio", "fds_ratio", "threads_ratio", "cpu_ratio", "memory_pressure",
            "accept_queue_log", "probe_latency_log", "probe_failed"]
FAULTS = ["memory_leak", "fd_leak", "thread_leak", "hang", "latency", "cpu_saturation"]
T0_MS = 1_700_000_000_000


def _bursts(rng, n, rate_per_tick=1 / 900):
    level = np.ones(n)
    t = 0
    while True:
        t += int(rng.exponential(1 / rate_per_tick))
        if t >= n:
            return level
        length = int(rng.integers(10, 90))
        level[t:t + length] *= rng.uniform(1.5, 3.0)


def healthy(rng: np.random.Generator, n: int) -> np.ndarray:
    """[n, 8] raw channels (NaN = missing) of a healthy task."""
    t = np.arange(n)
    load = rng.choice([0.05, 0.2, 0.45, 0.7]) * rng.uniform(0.8, 1.2)
    drift = 1 + 0.25 * np.sin(2 * np.pi * t / rng.uniform(1800, 7200) + rng.uniform(0, 6.3))
    noise = np.exp(0.1 * rng.standard_normal(n))
    traffic = load * drift * noise * _bursts(rng, n)  # ~ requests relative to capacity

    cpu = np.clip(0.02 + traffic * rng.uniform(0.8, 1.1) + 0.02 * rng.standard_normal(n), 0.0, 1.0)

    # Heap: baseline + garbage that grows with traffic, collected at a threshold (sawtooth).
    base = rng.uniform(0.15, 0.45)
    headroom = rng.uniform(0.08, 0.25)
    garbage = np.zeros(n)
    g = rng.uniform(0, headroom)
    alloc = rng.uniform(0.0005, 0.004)
    for i in range(n):
        g += alloc * (0.3 + traffic[i]) * rng.uniform(0.5, 1.5)
        if g >= headroom:
            g = rng.uniform(0.0, 0.02 * headroom)
        garbage[i] = g
    memory = base + garbage + 0.002 * rng.standard_normal(n)
    pressure = np.where(memory > 0.85, (memory - 0.85) * 2.0, 0.0)

    fd_base = rng.uniform(0.005, 0.05)
    fds = fd_base + 0.02 * traffic + 0.001 * np.round(rng.standard_normal(n) * 3)
    threads_base = rng.uniform(0.01, 0.08)
    threads = threads_base + 0.005 * np.round(np.clip(traffic, 0, 3) * 4) / 4

    queue = np.where(traffic > 0.9, rng.poisson(np.clip((traffic - 0.9) * 20, 0, 50)), 0)
    queue = np.log1p(queue)
    latency_ms = rng.uniform(1.0, 15.0) * (1 + 2 * np.clip(traffic - 0.5, 0, None)) * np.exp(0.25 * rng.standard_normal(n))
    latency = np.log1p(latency_ms)
    failed = (rng.random(n) < rng.choice([0.0, 0.0005])).astype(float)
    latency[failed == 1] = np.nan  # a timed-out probe has no latency

    raw = np.stack([memory, np.clip(fds, 0, 1), np.clip(threads, 0, 1), cpu, pressure, queue, latency, failed], 1)
    if rng.random() < 0.4:  # memory from the metadata endpoint: refreshed every 10 s
        raw[:, 0] = raw[(t // 10) * 10, 0]
    for c, p in ((4, 0.5), (5, 0.2), (6, 0.1), (7, 0.1)):
        if rng.random() < p:  # channel absent for the whole recording
            raw[:, c] = np.nan
    raw[rng.random((n, 8)) < 0.002] = np.nan  # single missing readings
    return raw


def inject(rng: np.random.Generator, raw: np.ndarray, fault: str, start: int) -> np.ndarray:
    """Overwrites raw[start:] with the fault's effect (keeps the healthy noise underneath)."""
    raw = raw.copy()
    n = len(raw)
    k = np.arange(n - start, dtype=float)
    rest = slice(start, n)

    def ramp(c, seconds_to_full):
        level = np.nan_to_num(raw[start - 1, c], nan=0.1)
        raw[rest, c] = np.minimum(1.0, raw[rest, c] + (1.0 - level) * k / seconds_to_full)

    if fault == "memory_leak":
        ramp(0, rng.uniform(600, 3600))
        if not np.isnan(raw[0, 4]):
            raw[rest, 4] = np.where(raw[rest, 0] > 0.85, (raw[rest, 0] - 0.85) * 3.0, raw[rest, 4])
    elif fault == "fd_leak":
        ramp(1, rng.uniform(300, 3000))
    elif fault == "thread_leak":
        ramp(2, rng.uniform(300, 3000))
    elif fault == "hang":
        raw[rest, 7] = 1.0
        raw[rest, 6] = np.nan
        raw[rest, 3] = rng.choice([0.01, 0.99]) + 0.005 * rng.standard_normal(n - start)
        raw[rest, 5] = np.log1p(np.minimum(128, 1 + k * rng.uniform(0.2, 2)))
    elif fault == "latency":
        factor = np.minimum(1.0, k / rng.uniform(60, 300)) * math.log(rng.uniform(3, 20))
        raw[rest, 6] = np.log1p(np.expm1(raw[rest, 6]) * np.exp(factor))
        raw[rest, 3] = np.clip(raw[rest, 3] * (1 + 0.3 * factor), 0, 1)
    elif fault == "cpu_saturation":
        raw[rest, 3] = np.clip(0.97 + 0.02 * rng.standard_normal(n - start), 0, 1)
        raw[rest, 6] = raw[rest, 6] + rng.uniform(1.0, 3.0)
        raw[rest, 5] = np.log1p(rng.poisson(rng.uniform(5, 40), n - start))
    else:
        raise ValueError(fault)
    absent = np.all(np.isnan(raw[:start]), axis=0)
    raw[:, absent] = np.nan  # a channel the task never had stays absent
    return raw


def write_csv(path: str, raw: np.ndarray, t0_ms: int = T0_MS) -> None:
    with open(path, "w", newline="") as f:
        f.write("unix_ms," + ",".join(CHANNELS) + "\n")
        for i, row in enumerate(raw):
            f.write(str(t0_ms + 1000 * i) + "," + ",".join("" if np.isnan(v) else repr(float(v)) for v in row) + "\n")


def generate(out: str, seed: int, n_healthy: int, n_faulty: int, healthy_ticks: int = 7200,
             faulty_ticks: int = 3600) -> list:
    """Writes healthy/*.csv and faulty/*.csv under `out` and faulty/scenarios.txt
    (`file fault start_unix_ms`). Returns the scenario rows."""
    rng = np.random.default_rng(seed)
    os.makedirs(os.path.join(out, "healthy"), exist_ok=True)
    os.makedirs(os.path.join(out, "faulty"), exist_ok=True)
    for i in range(n_healthy):
        write_csv(os.path.join(out, "healthy", f"healthy-{i:02d}.csv"), healthy(rng, healthy_ticks))
    scenarios = []
    for i in range(n_faulty):
        fault = FAULTS[i % len(FAULTS)]
        start = int(rng.integers(faulty_ticks // 3, faulty_ticks // 2))
        raw = inject(rng, healthy(rng, faulty_ticks), fault, start)
        name = f"{fault}-{i:02d}.csv"
        write_csv(os.path.join(out, "faulty", name), raw)
        scenarios.append((name, fault, T0_MS + 1000 * start))
    with open(os.path.join(out, "faulty", "scenarios.txt"), "w") as f:
        f.write("# file fault fault_start_unix_ms\n")
        for row in scenarios:
            f.write(" ".join(map(str, row)) + "\n")
    return scenarios

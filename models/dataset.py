"""The training and evaluation sets: raw recordings -> normalised vectors (see vectors.py).

Sources
  * synthetic recordings from synth.py with fixed seeds (always): TRAIN_SEED for training,
    EVAL_SEED (a different seed, so different tasks) for evaluation;
  * real recordings under models/data/recordings/{healthy,faulty}/ when present (VIGIL_RECORD
    CSVs). A faulty file's fault and start come from scenarios.txt (in recordings/ or
    recordings/faulty/; see read_scenarios) or else from the fault suite's index `<scenario>-<profile>.json` beside
    `<scenario>-<profile>-tN.csv`; a task that was not the fault's target is left out (it is
    neither clean nor faulty). Real healthy files are split by scenario (`<scenario>-<profile>`):
    every third scenario, sorted by name, is held out for evaluation, the rest trained on.

Vectors whose window ends in the normaliser's plain-average period (the first WARMUP ticks of
a recording) are dropped: the running statistics are still settling there.

Augmentation (training only, real healthy recordings; synthetic ones are already randomised
per recording): AUGMENT extra copies of each, each with its own seed: every optional channel
(memory_pressure, accept_queue_log, probe_latency_log, probe_failed) dropped for the whole copy
with probability 0.2 (tasks without PSI, listeners or a probe), 0.2 % of readings blanked
(missed samples), and Gaussian jitter of 1 % of each channel's standard deviation.
"""
from __future__ import annotations

import glob
import json
import os
import re
import shlex
import tempfile
from dataclasses import dataclass, field

import numpy as np

import synth
import vectors

HERE = os.path.dirname(os.path.abspath(__file__))
RECORDINGS = os.path.join(HERE, "data", "recordings")
TRAIN_SEED, EVAL_SEED = 20240601, 20240602
SYNTH_TRAIN = dict(n_healthy=16, n_faulty=0, healthy_ticks=7200)
SYNTH_EVAL = dict(n_healthy=6, n_faulty=24, healthy_ticks=3600, faulty_ticks=3600)
WARMUP = vectors.WARMUP_TICKS
AUGMENT = 2


@dataclass
class Recording:
    name: str  # e.g. synthetic/healthy/healthy-00.csv, real/faulty/x.csv
    ms: np.ndarray
    vectors: np.ndarray
    fault: str = ""  # "" for healthy
    fault_start_ms: int | None = None
    meta: dict = field(default_factory=dict)

    @property
    def labels(self) -> np.ndarray:
        """1 from the fault start on, 0 before (and everywhere in a healthy recording)."""
        if self.fault_start_ms is None:
            return np.zeros(len(self.ms), dtype=np.int8)
        return (self.ms >= self.fault_start_ms).astype(np.int8)


def _vectorise(path: str, vigil: str | None, raw_override=None):
    if vigil:
        ms, vecs = vectors.from_vigil(vigil, path)
    else:
        ms, raw = vectors.read_raw(path) if raw_override is None else raw_override
        ms, vecs = vectors.vectorise(ms, raw)
    drop = WARMUP - (vectors.WINDOW - 1)  # vector k ends at tick k + 7: keep those ending at tick 60 on
    return ms[drop:], vecs[drop:]


SLOT = re.compile(r"^(?P<prefix>.+)-t(?P<slot>\d+)\.csv$")


def group_of(name: str) -> str:
    """The scenario a recording belongs to: `<scenario>-<profile>` of the fault suite's
    `<scenario>-<profile>-tN.csv`, else the file name."""
    m = SLOT.match(name)
    return m.group("prefix") if m else name


def fault_of(path: str, scenarios: dict):
    """(fault, start_unix_ms) of a faulty recording, or None when it is not a fault's target:
    from scenarios.txt, else from the fault suite's index `<scenario>-<profile>.json` beside it
    (`fault_start_unix_ms`, and only the slots in `target_slots`)."""
    name = os.path.basename(path)
    if name in scenarios:
        return scenarios[name]
    m = SLOT.match(name)
    if not m:
        return None
    index_path = os.path.join(os.path.dirname(path), m.group("prefix") + ".json")
    if not os.path.exists(index_path):
        return None
    with open(index_path) as f:
        index = json.load(f)
    start = index.get("fault_start_unix_ms")
    if start is None or int(m.group("slot")) not in index.get("target_slots", []):
        return None
    fault = (index.get("fault") or index.get("scenario") or "fault").split()[0]
    return fault, int(start)


def read_scenarios(path: str) -> dict:
    """file -> (fault, start_unix_ms) from a scenarios.txt (# comments; fields separated by
    whitespace or commas). Layouts: `file fault start_unix_ms`; `file fault_start_unix_ms
    fault_end_unix_ms load_start_unix_ms scenario fault-spec...`; and the fault suite's
    `file fault_start_unix_ms=N ... scenario=NAME ...` (the fault named by its scenario)."""
    out = {}
    if not os.path.exists(path):
        return out
    with open(path) as f:
        lines = f.read().splitlines()
    for line in lines:
        line = line.split("#")[0].strip()
        if not line:
            continue
        if "=" in line:  # `file key=value ...` (values may be quoted)
            parts = shlex.split(line)
            fields = dict(p.split("=", 1) for p in parts[1:] if "=" in p)
            start = fields.get("fault_start_unix_ms", "")
            if start.isdigit():
                out[os.path.basename(parts[0])] = (fields.get("scenario") or "fault", int(start))
            continue
        parts = line.replace(",", " ").split()
        name = os.path.basename(parts[0])
        if len(parts) >= 2 and parts[1].isdigit():
            out[name] = (parts[4] if len(parts) >= 5 else "fault", int(parts[1]))
        elif len(parts) >= 3 and parts[2].lstrip("-").isdigit():
            out[name] = (parts[1], int(parts[2]))
    return out


def augment(rng: np.random.Generator, raw: np.ndarray) -> np.ndarray:
    raw = raw.copy()
    for c in (4, 5, 6, 7):
        if rng.random() < 0.2:
            raw[:, c] = np.nan
    raw[rng.random(raw.shape) < 0.002] = np.nan
    present = ~np.all(np.isnan(raw), axis=0)
    std = np.zeros(raw.shape[1])
    std[present] = np.nanstd(raw[:, present], axis=0)
    raw += 0.01 * np.nan_to_num(std) * rng.standard_normal(raw.shape)
    return raw


def real_files(kind: str) -> list:
    return sorted(glob.glob(os.path.join(RECORDINGS, kind, "*.csv")))


def build(vigil: str | None = None, log=print, train_part: bool = True):
    """-> (train: list[Recording], evaluation: list[Recording], facts: dict); without
    train_part, the training list is empty (and nothing is spent on it)."""
    train, evaluation = [], []
    facts = {"vectoriser": "vigil vectors" if vigil else "python mirror (vectors.py)",
             "synthetic": {"train_seed": TRAIN_SEED, "eval_seed": EVAL_SEED,
                           "train": SYNTH_TRAIN, "eval": SYNTH_EVAL},
             "real_train": [], "real_eval": [], "augment_copies": AUGMENT}
    with tempfile.TemporaryDirectory() as tmp:
        for seed, spec, into in ((TRAIN_SEED, SYNTH_TRAIN, train), (EVAL_SEED, SYNTH_EVAL, evaluation)):
            if into is train and not train_part:
                continue
            out = os.path.join(tmp, str(seed))
            scenarios = {name: (fault, start) for name, fault, start in synth.generate(out, seed, **spec)}
            for kind in ("healthy", "faulty"):
                for path in sorted(glob.glob(os.path.join(out, kind, "*.csv"))):
                    ms, vecs = _vectorise(path, vigil)
                    fault, start = scenarios.get(os.path.basename(path), ("", None))
                    into.append(Recording(f"synthetic/{kind}/{os.path.basename(path)}", ms, vecs, fault, start))
        healthy = real_files("healthy")
        groups = sorted({group_of(os.path.basename(p)) for p in healthy})
        held_out = {g for j, g in enumerate(groups) if j % 3 == 2}
        for i, path in enumerate(healthy):
            rel = os.path.relpath(path, HERE)
            if group_of(os.path.basename(path)) in held_out:
                ms, vecs = _vectorise(path, vigil)
                if not len(ms):
                    facts.setdefault("real_too_short", []).append(rel)
                    continue
                evaluation.append(Recording("real/healthy/" + os.path.basename(path), ms, vecs))
                facts["real_eval"].append(rel)
                continue
            facts["real_train"].append(rel)
            if not train_part:
                continue
            ms, vecs = _vectorise(path, vigil)
            train.append(Recording("real/healthy/" + os.path.basename(path), ms, vecs))
            raw_ms, raw = vectors.read_raw(path)
            for k in range(AUGMENT):
                rng = np.random.default_rng([TRAIN_SEED, i, k])
                aug = augment(rng, raw)
                aug_path = os.path.join(tmp, f"aug-{i}-{k}.csv")
                synth.write_csv(aug_path, aug, int(raw_ms[0]) if len(raw_ms) else synth.T0_MS)
                a_ms, a_vecs = _vectorise(aug_path, vigil)
                train.append(Recording(f"augmented/{k}/{os.path.basename(path)}", a_ms, a_vecs))
        scen = read_scenarios(os.path.join(RECORDINGS, "scenarios.txt"))
        scen.update(read_scenarios(os.path.join(RECORDINGS, "faulty", "scenarios.txt")))
        for path in real_files("faulty"):
            name = os.path.basename(path)
            found = fault_of(path, scen)
            if found is None:
                facts.setdefault("real_skipped", []).append(os.path.relpath(path, HERE))
                continue
            ms, vecs = _vectorise(path, vigil)
            if not len(ms):
                facts.setdefault("real_too_short", []).append(os.path.relpath(path, HERE))
                continue
            fault, start = found
            evaluation.append(Recording("real/faulty/" + name, ms, vecs, fault, start))
            facts["real_eval"].append(os.path.relpath(path, HERE))
    return train, evaluation, facts

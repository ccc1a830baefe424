"""Evaluates the committed models (or those in --models) on the held-out evaluation set.

    python3 models/evaluate.py                   # prints the model card's tables
    python3 models/evaluate.py --json FILE       # also writes every number as JSON

Both models run in tract (the `tract` package), one vector at a time like the agent. The
score is the mean squared reconstruction error. Alarm threshold: per model, the 99.9th
percentile of its scores on the training vectors (`threshold` in vigil-ae.json); a tick alarms
when its score is above it.

  * ROC AUC, per tick: fault ticks (from the fault start on) against healthy ticks (healthy
    recordings and the ticks before the fault start); also with only the fault ticks of the
    first 5 minutes after the start (the normaliser adapts to a lasting change, half-life 600 s);
  * detection delay: from the fault start to the first alarm at or after it;
  * false alarms: alarmed healthy ticks per hour of healthy ticks;
  * int8/f32 agreement: Pearson correlation of the scores, and the share of ticks on which both
    models make the same decision at their thresholds.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import dataset  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
PHASES = (("before", -1e12, 0), ("0-1 min", 0, 60), ("1-5 min", 60, 300), ("5-15 min", 300, 900),
          ("15 min on", 900, 1e12))  # seconds since the fault start
EARLY_MS = 300_000  # "first 5 minutes": fault ticks less than this after the fault start


def roc_auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve (Mann–Whitney U, ties counted half)."""
    scores = np.asarray(scores, np.float64)
    labels = np.asarray(labels).astype(bool)
    pos, neg = int(labels.sum()), int((~labels).sum())
    if pos == 0 or neg == 0:
        return float("nan")
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores))
    sorted_scores = scores[order]
    # average ranks of ties
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_scores)) + 1]
    ends = np.r_[starts[1:], len(scores)]
    for s, e in zip(starts, ends):
        ranks[order[s:e]] = (s + e + 1) / 2.0
    return float((ranks[labels].sum() - pos * (pos + 1) / 2.0) / (pos * neg))


def tract_scorer(path: str):
    import tract

    runnable = tract.nnef().load(path).into_runnable()
    state = runnable.spawn_state()

    def score(vectors: np.ndarray) -> np.ndarray:
        out = np.empty(len(vectors))
        for i, v in enumerate(vectors):
            x = np.ascontiguousarray(v, np.float32).reshape(1, -1)
            y = state.run([x])[0].to_numpy()
            out[i] = np.mean((y.astype(np.float64) - x) ** 2)
        return out

    return score


def evaluate(recordings, scores: dict, thresholds: dict) -> dict:
    """scores: model -> list of per-recording score arrays (same order as recordings)."""
    out = {"recordings": {}, "models": {}}
    labels = np.concatenate([r.labels for r in recordings])
    faults = sorted({r.fault for r in recordings if r.fault})
    for model, per_rec in scores.items():
        s = np.concatenate(per_rec)
        t = thresholds[model]
        early = np.concatenate([(r.ms - r.fault_start_ms < EARLY_MS) if r.fault else np.ones(len(r.ms), bool)
                                for r in recordings])
        m = {"threshold": t, "auc": roc_auc(s, labels), "auc_first_5_min": roc_auc(s[early], labels[early]),
             "auc_by_fault": {}, "delay_by_fault": {}}
        healthy_mask = labels == 0
        m["false_alarms_per_hour"] = float((s[healthy_mask] > t).sum() / (healthy_mask.sum() / 3600.0))
        for fault in faults:
            mask = np.concatenate([(r.labels == 0) | (r.fault == fault) for r in recordings])
            m["auc_by_fault"][fault] = roc_auc(s[mask], labels[mask])
            delays, missed = [], 0
            for r, rs in zip(recordings, per_rec):
                if r.fault != fault:
                    continue
                after = np.flatnonzero((r.labels == 1) & (rs > t))
                if len(after):
                    delays.append((int(r.ms[after[0]]) - r.fault_start_ms) / 1000.0)
                else:
                    missed += 1
            m["delay_by_fault"][fault] = {"detected": len(delays), "of": len(delays) + missed,
                                          "median_s": float(np.median(delays)) if delays else None,
                                          "max_s": float(np.max(delays)) if delays else None}
        m["mean_score_by_time"] = {}
        for fault in faults:
            recs = [(r, rs) for r, rs in zip(recordings, per_rec) if r.fault == fault]
            rel = np.concatenate([(r.ms - r.fault_start_ms) / 1000.0 for r, _ in recs])
            ss = np.concatenate([rs for _, rs in recs])
            row = {}
            for label, lo, hi in PHASES:
                sel = (rel >= lo) & (rel < hi)
                row[label] = float(ss[sel].mean()) if sel.any() else None
            m["mean_score_by_time"][fault] = row
        out["models"][model] = m
    if {"f32", "int8"} <= set(scores):
        a, b = np.concatenate(scores["f32"]), np.concatenate(scores["int8"])
        out["agreement"] = {
            "pearson": float(np.corrcoef(a, b)[0, 1]),
            "spearman": float(np.corrcoef(np.argsort(np.argsort(a)), np.argsort(np.argsort(b)))[0, 1]),
            "same_decision": float(np.mean((a > thresholds["f32"]) == (b > thresholds["int8"]))),
            "mean_abs_score_diff": float(np.mean(np.abs(a - b))),
            "mean_score": {"f32": float(a.mean()), "int8": float(b.mean())},
        }
    out["recordings"] = {"count": len(recordings), "ticks": int(len(labels)), "fault_ticks": int(labels.sum()),
                         "healthy_hours": float((labels == 0).sum() / 3600.0),
                         "faulty_recordings": sum(1 for r in recordings if r.fault)}
    return out


def tables(groups: dict) -> str:
    lines = []
    for group, res in groups.items():
        rec = res["recordings"]
        if not rec["faulty_recordings"]:
            m32, m8 = res["models"]["f32"], res["models"]["int8"]
            lines.append(f"### {group}: {rec['count']} healthy recordings, {rec['ticks']} ticks, no faulty ones\n")
            lines.append("| | f32 | int8 |\n| --- | --- | --- |")
            lines.append(f"| alarmed ticks per healthy hour | {m32['false_alarms_per_hour']:.2f} | "
                         f"{m8['false_alarms_per_hour']:.2f} |")
            lines.append(f"| mean score | {res['agreement']['mean_score']['f32']:.4f} | "
                         f"{res['agreement']['mean_score']['int8']:.4f} |")
            lines.append(f"\nint8 vs f32: score correlation {res['agreement']['pearson']:.4f}, same decision on "
                         f"{100 * res['agreement']['same_decision']:.2f} % of ticks.\n")
            continue
        lines.append(f"### {group}: {rec['count']} recordings, {rec['ticks']} ticks "
                     f"({rec['fault_ticks']} after a fault start, {rec['faulty_recordings']} faulty recordings)\n")
        lines.append("| | f32 | int8 |\n| --- | --- | --- |")
        m32, m8 = res["models"]["f32"], res["models"]["int8"]
        lines.append(f"| threshold (99.9th pct of training scores) | {m32['threshold']:.4f} | {m8['threshold']:.4f} |")
        lines.append(f"| ROC AUC, all faults | {m32['auc']:.4f} | {m8['auc']:.4f} |")
        lines.append(f"| ROC AUC, all faults, first 5 min after the start | {m32['auc_first_5_min']:.4f} | "
                     f"{m8['auc_first_5_min']:.4f} |")
        lines.append(f"| false alarms per healthy hour | {m32['false_alarms_per_hour']:.2f} | {m8['false_alarms_per_hour']:.2f} |")
        for fault in m32["auc_by_fault"]:
            lines.append(f"| ROC AUC, {fault} | {m32['auc_by_fault'][fault]:.4f} | {m8['auc_by_fault'][fault]:.4f} |")
        for fault in m32["delay_by_fault"]:
            def fmt(d):
                if not d["detected"]:
                    return f"0/{d['of']} detected"
                return f"{d['detected']}/{d['of']}, median {d['median_s']:.0f} s, max {d['max_s']:.0f} s"
            lines.append(f"| detection delay, {fault} | {fmt(m32['delay_by_fault'][fault])} | "
                         f"{fmt(m8['delay_by_fault'][fault])} |")
        lines.append("\nMean score by time since the fault start (f32 / int8):\n")
        lines.append("| fault | " + " | ".join(p[0] for p in PHASES) + " |")
        lines.append("| --- |" + " --- |" * len(PHASES))
        for fault, row in m32["mean_score_by_time"].items():
            row8 = m8["mean_score_by_time"][fault]
            cells = [f"{row[p[0]]:.3f} / {row8[p[0]]:.3f}" if row[p[0]] is not None else "-" for p in PHASES]
            lines.append(f"| {fault} | " + " | ".join(cells) + " |")
        ag = res.get("agreement")
        if ag:
            lines.append(f"\nint8 vs f32: score correlation {ag['pearson']:.4f} (Spearman {ag['spearman']:.4f}), "
                         f"same decision on {100 * ag['same_decision']:.2f} % of ticks, mean |score difference| "
                         f"{ag['mean_abs_score_diff']:.4f} (mean score f32 {ag['mean_score']['f32']:.4f}, "
                         f"int8 {ag['mean_score']['int8']:.4f}).\n")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", default=HERE, help="directory with vigil-ae-{f32,int8}.nnef.tgz and vigil-ae.json")
    p.add_argument("--vigil", help="take vectors from `vigil vectors` (as train.py --vigil)")
    p.add_argument("--json", help="write the results here")
    args = p.parse_args(argv)
    with open(os.path.join(args.models, "vigil-ae.json")) as f:
        info = json.load(f)
    _, recordings, _ = dataset.build(args.vigil, train_part=False)
    scores = {}
    for model in ("f32", "int8"):
        scorer = tract_scorer(os.path.join(args.models, f"vigil-ae-{model}.nnef.tgz"))
        scores[model] = [scorer(r.vectors) for r in recordings]
    groups = {}
    for group, keep in (("synthetic", lambda r: r.name.startswith("synthetic/")),
                        ("real", lambda r: r.name.startswith("real/")),
                        ("all", lambda r: True)):
        idx = [i for i, r in enumerate(recordings) if keep(r)]
        if not idx:
            continue
        if group == "all" and sum(1 for g in groups.values() if g["recordings"]["faulty_recordings"]) < 2:
            continue  # the same as the only group with faults
        groups[group] = evaluate([recordings[i] for i in idx],
                                 {m: [s[i] for i in idx] for m, s in scores.items()}, info["threshold"])
    print(tables(groups))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(groups, f, indent=2)
            f.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

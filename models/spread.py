"""How much the results move with the training seed: retrains with several initialisation
seeds (same data) and reports each model's evaluation and, with --nab, its NAB scores.

    python3 models/spread.py --vigil target/dev-fast/vigil --nab ../shared/datasets/nab --seeds 1 2 3 4 5

Each seed: train.py --seed S into a temporary directory, evaluate.py's measures on the
evaluation set (tract, both models), and with --nab `vigil replay --model` over every NAB file,
scored with nab/score.py. Prints one row per seed and model, and the mean and standard
deviation over seeds.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
import numpy as np  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "nab"))
import dataset  # noqa: E402
import evaluate  # noqa: E402


def nab_scores(vigil: str, nab_dir: str, model: str, out: str) -> dict:
    import nab  # the scorer library in models/nab

    subprocess.run([sys.executable, os.path.join(HERE, "nab", "replay.py"), "--vigil", vigil, "--dataset", nab_dir,
                    "--out", out, "--model", model], check=True, capture_output=True)
    return {f"nab_{name}": r.normalised for name, r in nab.score_detector(nab_dir, out).items()}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3, 4, 5])
    p.add_argument("--vigil", help="vigil binary (for vectors and, with --nab, replay)")
    p.add_argument("--nab", help="NAB dataset directory")
    p.add_argument("--json", help="write the rows here")
    args = p.parse_args(argv)
    _, recordings, _ = dataset.build(args.vigil, log=lambda *a: None, train_part=False)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.seeds:
            out = os.path.join(tmp, str(seed))
            cmd = [sys.executable, os.path.join(HERE, "train.py"), "--out", out, "--seed", str(seed), "--quiet"]
            if args.vigil:
                cmd += ["--vigil", args.vigil]
            subprocess.run(cmd, check=True)
            with open(os.path.join(out, "vigil-ae.json")) as f:
                info = json.load(f)
            scores = {m: [evaluate.tract_scorer(os.path.join(out, f"vigil-ae-{m}.nnef.tgz"))(r.vectors)
                          for r in recordings] for m in ("f32", "int8")}
            res = evaluate.evaluate(recordings, scores, info["threshold"])
            for m in ("f32", "int8"):
                row = {"seed": seed, "model": m, "auc": res["models"][m]["auc"],
                       "auc_first_5_min": res["models"][m]["auc_first_5_min"],
                       "false_alarms_per_hour": res["models"][m]["false_alarms_per_hour"],
                       "int8_f32_score_correlation": res["agreement"]["pearson"]}
                if args.nab:
                    row.update(nab_scores(args.vigil, args.nab, os.path.join(out, f"vigil-ae-{m}.nnef.tgz"),
                                          os.path.join(out, f"nab-{m}")))
                rows.append(row)
                print(json.dumps(row), flush=True)
    keys = [k for k in rows[0] if k not in ("seed", "model")]
    print("\n| model | " + " | ".join(keys) + " |")
    print("| --- |" + " --- |" * len(keys))
    for m in ("f32", "int8"):
        sel = [r for r in rows if r["model"] == m]
        cells = [f"{np.mean([r[k] for r in sel]):.3f} ± {np.std([r[k] for r in sel], ddof=1) if len(sel) > 1 else 0:.3f}"
                 for k in keys]
        print(f"| {m} | " + " | ".join(cells) + " |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Runs `vigil replay` over every data file of a NAB dataset directory, writing NAB-format
results (`timestamp,value,anomaly_score,label`) to OUT/<category>/<name>.csv, ready for
score.py.

    python3 models/nab/replay.py --vigil target/release/vigil --dataset ../shared/datasets/nab \
        --out results/nab/vigil [--model models/vigil-ae-f32.nnef.tgz]
    python3 models/nab/score.py --dataset ../shared/datasets/nab results/nab/vigil

Without --model, replay uses the model embedded in the binary (the int8 one).
"""
from __future__ import annotations

import argparse
import glob
import os
import subprocess
import sys


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--vigil", required=True, help="the vigil binary")
    p.add_argument("--dataset", required=True, help="NAB dataset directory (data/, labels/)")
    p.add_argument("--out", required=True, help="results directory to write")
    p.add_argument("--model", help="an NNEF model file for --model (default: the embedded one)")
    args = p.parse_args(argv)
    windows = os.path.join(args.dataset, "labels", "combined_windows.json")
    files = sorted(glob.glob(os.path.join(args.dataset, "data", "*", "*.csv")))
    if not files:
        print(f"no data files under {args.dataset}/data", file=sys.stderr)
        return 1
    for path in files:
        rel = os.path.relpath(path, os.path.join(args.dataset, "data"))
        out = os.path.join(args.out, rel)
        os.makedirs(os.path.dirname(out), exist_ok=True)
        cmd = [args.vigil, "replay", path, "--out", out, "--windows", windows, "--key", rel.replace(os.sep, "/")]
        if args.model:
            cmd += ["--model", args.model]
        subprocess.run(cmd, check=True)
    print(f"{len(files)} files replayed into {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

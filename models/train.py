"""Trains the autoencoder and exports it as NNEF, f32 and int8.

    python3 models/train.py                 # writes models/vigil-ae-{f32,int8}.nnef.tgz, models/vigil-ae.json
    python3 models/train.py --out DIR       # writes the same files into DIR instead
    python3 models/train.py --vigil target/dev-fast/vigil   # vectors from `vigil vectors`

Fixed seeds throughout (data in dataset.py, initialisation and minibatch order here); numpy
only. Every export is checked by running it in tract (the `tract` Python package): the f32
model against the numpy forward pass, the int8 model against the numpy simulation of its
integer arithmetic.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # small matrices: threads only add noise and time
os.environ.setdefault("OMP_NUM_THREADS", "1")
import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ae  # noqa: E402
import dataset  # noqa: E402
import nnef  # noqa: E402
import vectors  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
SEED = 7
EPOCHS = 30
BATCH = 256
LR = 2e-3
F32_TOLERANCE = 1e-4  # max |tract f32 - numpy f64 forward|, per output
CHECK_VECTORS = 500
THRESHOLD_QUANTILE = 0.999  # of the training vectors' scores: the evaluation's alarm threshold


def sha256(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def check_in_tract(net: ae.Net, q: ae.Quantised, f32_blob: bytes, int8_blob: bytes, x: np.ndarray) -> dict:
    run32, run8 = nnef.tract_runner(f32_blob), nnef.tract_runner(int8_blob)
    y32 = np.concatenate([run32(v) for v in x])
    y8 = np.concatenate([run8(v) for v in x])
    f32_err = float(np.max(np.abs(y32 - net.forward(x))))
    int8_err = float(np.max(np.abs(y8 - ae.int8_forward(q, x))))
    if f32_err > F32_TOLERANCE:
        raise SystemExit(f"tract f32 output differs from numpy by {f32_err}")
    if int8_err > q.act_scales[-1] * 1.01:  # at most one output step apart
        raise SystemExit(f"tract int8 output differs from the numpy simulation by {int8_err}")
    return {"vectors": len(x), "f32_max_abs_diff_vs_numpy": f32_err,
            "int8_max_abs_diff_vs_numpy_int8": int8_err}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default=HERE, help="directory for the model files (default: models/)")
    p.add_argument("--vigil", help="a vigil binary: take vectors from `vigil vectors` instead of vectors.py")
    p.add_argument("--epochs", type=int, default=EPOCHS)
    p.add_argument("--seed", type=int, default=SEED, help="initialisation and minibatch seed (data seeds are fixed)")
    p.add_argument("--quiet", action="store_true")
    args = p.parse_args(argv)
    log = (lambda *a: None) if args.quiet else (lambda *a: print(*a, flush=True))
    started = time.time()

    train_set, eval_set, facts = dataset.build(args.vigil, log)
    x = np.concatenate([r.vectors for r in train_set]).astype(np.float64)
    log(f"{len(x)} training vectors from {len(train_set)} recordings ({time.time() - started:.1f} s)")
    trained = time.time()

    rng = np.random.default_rng(args.seed)
    net = ae.Net.init(rng)
    losses = ae.train(net, x, rng, epochs=args.epochs, batch=BATCH, lr=LR,
                      log=None if args.quiet else (lambda s: log(s)))
    log(f"trained in {time.time() - trained:.1f} s")
    net32 = net.as_f32()
    net64 = ae.Net([w.astype(np.float64) for w in net32.weights], [b.astype(np.float64) for b in net32.biases])
    q = ae.quantise(net64, x, vectors.CLIP)

    os.makedirs(args.out, exist_ok=True)
    f32_blob = nnef.tgz_bytes(nnef.f32_graph(net32.weights, net32.biases))
    int8_blob = nnef.tgz_bytes(nnef.int8_graph(q))
    check = check_in_tract(net64, q, f32_blob, int8_blob,
                           x[np.random.default_rng(SEED + 1).choice(len(x), CHECK_VECTORS, replace=False)])
    paths = {"f32": os.path.join(args.out, "vigil-ae-f32.nnef.tgz"),
             "int8": os.path.join(args.out, "vigil-ae-int8.nnef.tgz")}
    for kind, blob in (("f32", f32_blob), ("int8", int8_blob)):
        with open(paths[kind], "wb") as f:
            f.write(blob)

    train_scores_f32 = ae.score(x, net64.forward(x))
    train_scores_int8 = ae.score(x, ae.int8_forward(q, x))
    info = {
        "seed": args.seed,
        "layers": list(ae.LAYERS),
        "activation": "relu (hidden), linear (output)",
        "epochs": args.epochs, "batch": BATCH, "learning_rate": LR, "optimiser": "adam, cosine decay",
        "data": facts | {"training_vectors": int(len(x)), "training_recordings": len(train_set),
                         "evaluation_recordings": len(eval_set)},
        "loss_per_epoch": [round(v, 6) for v in losses],
        "final_loss": losses[-1],
        "training_score_mean": {"f32": float(train_scores_f32.mean()), "int8": float(train_scores_int8.mean())},
        "threshold_quantile": THRESHOLD_QUANTILE,
        "threshold": {"f32": float(np.quantile(train_scores_f32, THRESHOLD_QUANTILE)),
                      "int8": float(np.quantile(train_scores_int8, THRESHOLD_QUANTILE))},
        "quantisation": {
            "scheme": "per-tensor symmetric int8, zero point 0",
            "activation_scale": f"{ae.ACTIVATION_PERCENTILE}th percentile of |layer output| on the training vectors / 127",
            "input_scale": q.act_scales[0],
            "layer_output_scales": q.act_scales[1:],
            "weight_scales": q.weight_scales,
            "bias": "i32, round(b / (input_scale * weight_scale)) of each layer",
        },
        "tract_check": check,
        "files": {k: {"path": os.path.basename(v), "bytes": os.path.getsize(v), "sha256": sha256(v)}
                  for k, v in paths.items()},
        "seconds": round(time.time() - started, 1),
    }
    with open(os.path.join(args.out, "vigil-ae.json"), "w") as f:
        json.dump(info, f, indent=2)
        f.write("\n")
    log(f"final loss {losses[-1]:.5f}; tract check {check}")
    log(f"wrote {paths['f32']} ({info['files']['f32']['bytes']} B), {paths['int8']} "
        f"({info['files']['int8']['bytes']} B) in {info['seconds']} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

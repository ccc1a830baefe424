"""Tests of the autoencoder pipeline: the NNEF export, the models in tract, the rebuild, and the
input definition against the agent's source.

run: python3 -m unittest discover -s models
Needs numpy and tract (models/requirements.txt). The vigil binary for the vectoriser
comparison: $VIGIL_BIN (then it must work), else target/{dev-fast,release,debug}/vigil if
present, else that test is skipped.
"""
from __future__ import annotations

import json
import os
import re
import struct
import subprocess
import sys
import tempfile
import unittest

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
import numpy as np  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import ae  # noqa: E402
import dataset  # noqa: E402
import evaluate  # noqa: E402
import nnef  # noqa: E402
import synth  # noqa: E402
import vectors  # noqa: E402

INT8 = os.path.join(HERE, "vigil-ae-int8.nnef.tgz")
F32 = os.path.join(HERE, "vigil-ae-f32.nnef.tgz")

# Stated tolerances.
F32_TOL = 1e-4  # |tract f32 - numpy f64|, per output value
INT8_VS_F32_CORR = 0.99  # Pearson correlation of the scores on the test vectors
INT8_VS_F32_REL_MEAN = 0.15  # |mean int8 score - mean f32 score| / mean f32 score
REBUILD_AUC = 0.005  # |AUC rebuilt - AUC committed| on the evaluation set (int8)
REBUILD_REL_MEAN = 0.01  # relative difference of the mean int8 score on the evaluation set
REBUILD_CORR = 0.999  # Pearson correlation of per-tick int8 scores, rebuilt vs committed


def read(path, mode="r"):
    with open(path, mode) as f:
        return f.read()


def sample_vectors(seed=11, n=1200):
    """A small varied set: a healthy recording and one of each fault, through the mirror."""
    rng = np.random.default_rng(seed)
    out = [vectors.vectorise(np.arange(n) * 1000, synth.healthy(rng, n))[1]]
    for fault in synth.FAULTS:
        raw = synth.inject(rng, synth.healthy(rng, n), fault, n // 2)
        out.append(vectors.vectorise(np.arange(n) * 1000, raw)[1])
    return np.concatenate(out)[:: 3]


def run_tract(path, x):
    score = evaluate.tract_scorer(path)
    import tract

    runnable = tract.nnef().load(path).into_runnable()
    state = runnable.spawn_state()
    y = np.concatenate([state.run([np.ascontiguousarray(v.reshape(1, -1))])[0].to_numpy() for v in x])
    return y, score


class DatFormat(unittest.TestCase):
    def test_header_fields(self):
        for array, item, bits in ((np.arange(6, dtype=np.float32).reshape(2, 3), 0, 32),
                                  (np.array([-127, 0, 5], dtype=np.int8), 3, 8),
                                  (np.array([[1, -2]], dtype=np.int32), 4, 32)):
            blob = nnef.dat_bytes(array)
            self.assertEqual(blob[:4], bytes([0x4E, 0xEF, 0x01, 0x00]))
            length, rank = struct.unpack_from("<II", blob, 4)
            dims = struct.unpack_from("<8I", blob, 12)
            self.assertEqual((length, rank), (array.nbytes, array.ndim))
            self.assertEqual(dims, tuple(array.shape) + (0,) * (8 - array.ndim))
            self.assertEqual(struct.unpack_from("<II", blob, 44), (bits, item))
            self.assertEqual(blob[52:128], bytes(76))
            self.assertEqual(len(blob), 128 + array.nbytes)
            np.testing.assert_array_equal(nnef.read_dat(blob), array)
            self.assertEqual(nnef.read_dat(blob).dtype, array.dtype)

    def test_committed_models_are_well_formed(self):
        for path, weight_type in ((F32, np.float32), (INT8, np.int8)):
            files = nnef.read_tgz(read(path, "rb"))
            graph = files["graph.nnef"].decode()
            self.assertIn("input = external<scalar>(shape = [1, 64]);", graph)
            self.assertIn("graph network(input) -> (output)", graph)
            self.assertIn("extension tract_registry tract_core;", graph)
            shapes = []
            for i in range(4):
                w, b = nnef.read_dat(files[f"w{i}.dat"]), nnef.read_dat(files[f"b{i}.dat"])
                self.assertEqual(w.dtype, weight_type)
                self.assertEqual(b.dtype, np.float32 if weight_type == np.float32 else np.int32)
                shapes.append(w.shape)
            self.assertEqual(shapes, [(32, 64), (8, 32), (32, 8), (64, 32)])
        self.assertIn("graph.quant", nnef.read_tgz(read(INT8, "rb")))

    def test_models_load_in_tract_with_the_contracted_io(self):
        import tract

        for path in (F32, INT8):
            model = tract.nnef().load(path)
            self.assertEqual((model.input_count(), model.output_count()), (1, 1))
            self.assertEqual(model.input_name(0), "input")
            self.assertEqual(str(model.input_fact(0)), "1,64,f32")
            self.assertEqual(str(model.output_fact(0)), "1,64,f32")


class InTract(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.x = sample_vectors()

    def test_f32_matches_numpy(self):
        weights, biases = nnef.parse_f32(read(F32, "rb"))
        net = ae.Net([w.astype(np.float64) for w in weights], [b.astype(np.float64) for b in biases])
        y, _ = run_tract(F32, self.x)
        self.assertLess(float(np.max(np.abs(y - net.forward(self.x)))), F32_TOL)

    def test_int8_matches_its_integer_arithmetic(self):
        q = nnef.parse_int8(read(INT8, "rb"))
        y, _ = run_tract(INT8, self.x)
        diff = np.abs(y - ae.int8_forward(q, self.x))
        # Same integers: at most one output step apart (float rounding of the rescale).
        self.assertLessEqual(float(diff.max()), q.act_scales[-1] * 1.001)
        self.assertGreater(float(np.mean(diff < 1e-6)), 0.999)

    def test_int8_agrees_with_f32(self):
        _, s8 = run_tract(INT8, self.x)
        _, s32 = run_tract(F32, self.x)
        a, b = s32(self.x), s8(self.x)
        self.assertGreater(float(np.corrcoef(a, b)[0, 1]), INT8_VS_F32_CORR)
        self.assertLess(abs(b.mean() - a.mean()) / a.mean(), INT8_VS_F32_REL_MEAN)


class Rebuild(unittest.TestCase):
    """`python3 models/train.py` rebuilds the models from the committed inputs; the rebuilt int8
    model scores the evaluation set like the committed one (tolerances above)."""

    def test_rebuilt_int8_scores_like_the_committed_one(self):
        committed_data = json.loads(read(os.path.join(HERE, "vigil-ae.json")))["data"]
        present = [os.path.relpath(p, HERE) for kind in ("healthy", "faulty") for p in dataset.real_files(kind)]
        used = (committed_data["real_train"] + committed_data["real_eval"] + committed_data.get("real_skipped", [])
                + committed_data.get("real_too_short", []))
        self.assertEqual(sorted(present), sorted(used),
                         "the recordings under models/data changed since the committed model was trained: "
                         "run `python3 models/train.py` (and evaluate.py, and update the model card)")
        with tempfile.TemporaryDirectory() as tmp:
            subprocess.run([sys.executable, os.path.join(HERE, "train.py"), "--out", tmp, "--quiet"], check=True)
            _, recordings, _ = dataset.build(None, log=lambda *a: None, train_part=False)
            labels = np.concatenate([r.labels for r in recordings])
            x = np.concatenate([r.vectors for r in recordings])
            committed = evaluate.tract_scorer(INT8)(x)
            rebuilt = evaluate.tract_scorer(os.path.join(tmp, "vigil-ae-int8.nnef.tgz"))(x)
            info_c = json.loads(read(os.path.join(HERE, "vigil-ae.json")))
            info_r = json.loads(read(os.path.join(tmp, "vigil-ae.json")))
        self.assertEqual(info_c["data"]["training_vectors"], info_r["data"]["training_vectors"])
        self.assertLess(abs(evaluate.roc_auc(rebuilt, labels) - evaluate.roc_auc(committed, labels)), REBUILD_AUC)
        self.assertLess(abs(rebuilt.mean() - committed.mean()) / committed.mean(), REBUILD_REL_MEAN)
        self.assertGreater(float(np.corrcoef(rebuilt, committed)[0, 1]), REBUILD_CORR)


def rust_source():
    return read(os.path.join(ROOT, "agent", "judge", "vector.rs"))


def rust_const(src, name):
    m = re.search(rf"const {name}: [^=]+= ([^;]+);", src)
    return m.group(1)


class InputDefinition(unittest.TestCase):
    def test_channels_and_constants_match_the_agent(self):
        src = rust_source()
        block = re.search(r"pub const CHANNELS: \[&str; (\d+)\] = \[(.*?)\];", src, re.S)
        channels = re.findall(r'"(\w+)"', block.group(2))
        self.assertEqual(int(block.group(1)), len(channels))
        self.assertEqual(channels, vectors.CHANNELS)
        self.assertEqual(channels, synth.CHANNELS)
        self.assertEqual(int(rust_const(src, "WINDOW")), vectors.WINDOW)
        self.assertEqual(len(channels) * vectors.WINDOW, 64)
        self.assertEqual([float(v) for v in re.findall(r"[\d.]+", rust_const(src, "MIN_STD").split("=")[-1])
                          if v != "8"], vectors.MIN_STD)
        self.assertEqual(float(rust_const(src, "CLIP")), vectors.CLIP)
        self.assertEqual(int(rust_const(src, "WARMUP_TICKS")), vectors.WARMUP_TICKS)
        self.assertEqual(float(rust_const(src, "HALF_LIFE_TICKS")), vectors.HALF_LIFE_TICKS)

    def test_model_card_channel_table(self):
        card = read(os.path.join(HERE, "README.md"))
        rows = re.findall(r"^\| (\d+) \| `(\w+)` \|", card, re.M)
        self.assertEqual([int(i) for i, _ in rows], list(range(8)))
        self.assertEqual([c for _, c in rows], vectors.CHANNELS)
        self.assertIn("64", card)

    def test_mirror_matches_vigil_vectors(self):
        binary = os.environ.get("VIGIL_BIN")
        if not binary:
            found = [p for p in (os.path.join(ROOT, "target", d, "vigil") for d in ("dev-fast", "release", "debug"))
                     if os.access(p, os.X_OK) and "vectors" in subprocess.run(
                         [p, "--help"], capture_output=True, text=True).stdout + subprocess.run(
                         [p, "--help"], capture_output=True, text=True).stderr]
            if not found:
                self.skipTest("no vigil binary with `vectors` (set VIGIL_BIN)")
            binary = max(found, key=os.path.getmtime)
        rng = np.random.default_rng(5)
        with tempfile.TemporaryDirectory() as tmp:
            for k, raw in enumerate((synth.healthy(rng, 900), synth.inject(rng, synth.healthy(rng, 900), "hang", 400),
                                     synth.inject(rng, synth.healthy(rng, 900), "memory_leak", 300))):
                path = os.path.join(tmp, f"r{k}.csv")
                synth.write_csv(path, raw)
                ms, raw_back = vectors.read_raw(path)
                mirror_ms, mirror = vectors.vectorise(ms, raw_back)
                rust_ms, rust = vectors.from_vigil(binary, path)
                np.testing.assert_array_equal(rust_ms, mirror_ms)
                np.testing.assert_array_equal(rust, mirror)  # bit for bit


class Mirror(unittest.TestCase):
    """The Python mirror reproduces the agent's own unit-test cases (agent/judge/vector.rs)."""

    def test_plain_mean_and_variance_during_warm_up(self):
        v = vectors.Vectoriser()
        for x in (1.0, 2.0, 3.0, 4.0):
            v.row([x] + [float("nan")] * 7)
        self.assertAlmostEqual(v.mean[0], 2.5, places=12)
        self.assertAlmostEqual(v.variance[0], 1.25, places=12)
        self.assertEqual(v.count[1], 0)

    def test_a_jump_stands_out_and_missing_is_zero(self):
        raw = [[0.30 + 0.001 * (t % 3), 0.1] + [float("nan")] * 6 for t in range(200)]
        raw.append([0.90, 0.1] + [float("nan")] * 6)
        _, vecs = vectors.vectorise(np.arange(len(raw)), np.array(raw))
        calm, jumped = vecs[-2], vecs[-1]
        self.assertLess(abs(calm[-8]), 2.0)
        self.assertEqual(jumped[-8], np.float32(6.0))
        self.assertEqual(jumped[-7], 0.0)
        self.assertEqual(jumped[-6], 0.0)
        self.assertEqual(jumped[-16], calm[-8])

    def test_no_vector_until_the_window_is_full(self):
        ms, vecs = vectors.vectorise(np.arange(8), np.full((8, 8), np.nan))
        self.assertEqual(vecs.shape, (1, 64))
        self.assertEqual(int(ms[0]), 7)
        self.assertFalse(vecs.any())


class Metrics(unittest.TestCase):
    def test_roc_auc_against_pair_counting(self):
        rng = np.random.default_rng(3)
        s = np.round(rng.normal(size=300), 1)  # ties
        y = rng.random(300) < 0.3
        pos, neg = s[y], s[~y]
        pairs = np.mean((pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :]))
        self.assertAlmostEqual(evaluate.roc_auc(s, y), float(pairs), places=12)

    def test_fault_suite_index(self):
        with tempfile.TemporaryDirectory() as tmp:
            with open(os.path.join(tmp, "hang-fast.json"), "w") as f:
                json.dump({"scenario": "hang", "fault": "hang at_s=60", "fault_start_unix_ms": 1234,
                           "target_slots": [1]}, f)
            self.assertEqual(dataset.fault_of(os.path.join(tmp, "hang-fast-t1.csv"), {}), ("hang", 1234))
            self.assertIsNone(dataset.fault_of(os.path.join(tmp, "hang-fast-t0.csv"), {}))
            self.assertIsNone(dataset.fault_of(os.path.join(tmp, "other.csv"), {}))
        self.assertEqual(dataset.group_of("steady-20-fast-t2.csv"), "steady-20-fast")

    def test_scenarios_file(self):
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "scenarios.txt")
            with open(path, "w") as f:
                f.write("# file fault start\nleak-1.csv memory_leak 1700000000000\n\nhang.csv,hang,42\n"
                        "faulty/fd-leak-t2.csv 1796130000000 1796130060000 1796129990000 fd-leak fds\n"
                        'faulty/kill-t1.csv fault_start_unix_ms=17 fault_end_unix_ms=none scenario=kill fault="kill now"\n')
            self.assertEqual(dataset.read_scenarios(path),
                             {"leak-1.csv": ("memory_leak", 1700000000000), "hang.csv": ("hang", 42),
                              "fd-leak-t2.csv": ("fd-leak", 1796130000000), "kill-t1.csv": ("kill", 17)})


if __name__ == "__main__":
    unittest.main()

"""Tests for the NAB-style scorer and the z-score baseline, on small synthetic cases.

run: python3 -m unittest discover -s models/nab -v
"""
from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import os
import sys
import tempfile
import unittest
from datetime import datetime, timedelta

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import nab  # noqa: E402
import score as score_cli  # noqa: E402
import zscore  # noqa: E402

STD = nab.Profile("standard", tp=1.0, fp=0.11, fn=1.0)
LOW_FP = nab.Profile("reward_low_FP_rate", tp=1.0, fp=0.22, fn=1.0)
LOW_FN = nab.Profile("reward_low_FN_rate", tp=1.0, fp=0.11, fn=2.0)
SIG_START = 2.0 / (1.0 + math.exp(-5.0)) - 1.0  # sigma(-1) = 0.986614...


def truth(n, windows, probation=0):
    return nab.FileTruth("cat/f.csv", n, list(windows), probation).prepare()


def det(n, *idx):
    d = np.zeros(n, dtype=bool)
    d[list(idx)] = True
    return d


class ScaledSigmoid(unittest.TestCase):
    def test_known_values(self):
        self.assertAlmostEqual(nab.scaled_sigmoid(-1.0), 0.9866142981514305, places=12)
        self.assertAlmostEqual(nab.scaled_sigmoid(0.0), 0.0, places=12)
        self.assertAlmostEqual(nab.scaled_sigmoid(1.0), -0.9866142981514305, places=12)
        self.assertAlmostEqual(nab.scaled_sigmoid(-0.5), 2 / (1 + math.exp(-2.5)) - 1, places=12)
        self.assertEqual(nab.scaled_sigmoid(3.5), -1.0)
        self.assertEqual(nab.scaled_sigmoid(1e6), -1.0)  # no overflow

    def test_monotone_decreasing(self):
        y = np.linspace(-1, 3, 401)
        s = nab.scaled_sigmoid(y)
        self.assertTrue(np.all(np.diff(s) < 0))

    def test_probation(self):
        self.assertEqual(nab.probation_length(1000), 150)
        self.assertEqual(nab.probation_length(4032), 604)
        self.assertEqual(nab.probation_length(22695), 750)  # capped at 0.15 * 5000


class WindowWeights(unittest.TestCase):
    def test_positions(self):
        t = truth(30, [(10, 19)])  # window of length 10
        # inside: y = -(19 - i + 1) / 10 -> -1 at the first record, -0.1 at the last
        self.assertAlmostEqual(t.weight[10], SIG_START)
        self.assertAlmostEqual(t.weight[19], nab.scaled_sigmoid(-0.1))
        self.assertTrue(np.all(np.diff(t.weight[10:20]) < 0))
        # after the window: y = (i - 19) / 10
        self.assertAlmostEqual(t.weight[20], nab.scaled_sigmoid(0.1))
        self.assertAlmostEqual(t.weight[29], nab.scaled_sigmoid(1.0))
        # before any window: full penalty
        self.assertTrue(np.all(t.weight[:10] == -1.0))
        self.assertEqual(list(t.window_id[9:21]), [-1] + [0] * 10 + [-1])

    def test_fp_between_windows_uses_preceding_window(self):
        t = truth(40, [(5, 9), (30, 39)])
        # record 12 follows window 0 (end 9, length 5): y = 3/5
        self.assertAlmostEqual(t.weight[12], nab.scaled_sigmoid(0.6))
        self.assertEqual(t.weight[29], -1.0)  # y = 20/5 > 3

    def test_timestamps_to_indices(self):
        base = datetime(2020, 1, 1)
        ts = [base + timedelta(minutes=5 * i) for i in range(20)]
        w = nab.windows_to_indices(ts, [["2020-01-01 00:10:00.000000", "2020-01-01 00:30:00.000000"]])
        self.assertEqual(w, [(2, 6)])  # both ends inclusive
        # bounds falling between records
        w = nab.windows_to_indices(ts, [["2020-01-01 00:11:00", "2020-01-01 00:29:59"]])
        self.assertEqual(w, [(3, 5)])
        with self.assertRaises(ValueError):
            nab.windows_to_indices(ts, [["2021-01-01 00:00:00", "2021-01-02 00:00:00"]])

    def test_repeated_timestamps(self):
        base = datetime(2020, 1, 1)
        ts = [base + timedelta(hours=i) for i in range(5)] + [base + timedelta(hours=4)] * 3 + \
             [base + timedelta(hours=5 + i) for i in range(5)]
        w = nab.windows_to_indices(ts, [["2020-01-01 04:00:00", "2020-01-01 06:00:00"]])
        self.assertEqual(w, [(4, 9)])


class FileScore(unittest.TestCase):
    def test_null_detector(self):
        t = truth(100, [(20, 29), (60, 69)])
        s, c = nab.score_detections(t, np.zeros(100, bool), STD)
        self.assertEqual((s, c.tp, c.fn, c.fp), (-2.0, 0, 2, 0))
        s, _ = nab.score_detections(t, np.zeros(100, bool), LOW_FN)
        self.assertEqual(s, -4.0)

    def test_detection_at_window_start(self):
        t = truth(100, [(20, 29)])
        s, c = nab.score_detections(t, det(100, 20), STD)
        self.assertAlmostEqual(s, SIG_START)
        self.assertEqual((c.tp, c.fn, c.fp), (1, 0, 0))

    def test_only_earliest_detection_in_window_counts(self):
        t = truth(100, [(20, 29)])
        early, _ = nab.score_detections(t, det(100, 22), STD)
        both, c = nab.score_detections(t, det(100, 22, 23, 24, 29), STD)
        self.assertAlmostEqual(early, both)
        self.assertEqual(c.tp, 1)
        self.assertAlmostEqual(early, nab.scaled_sigmoid(-(29 - 22 + 1) / 10))
        late, _ = nab.score_detections(t, det(100, 29), STD)
        self.assertLess(late, early)
        self.assertGreater(late, 0.0)

    def test_false_positives(self):
        t = truth(100, [(20, 29)])
        # before the window: -A_FP each; plus the missed window
        s, c = nab.score_detections(t, det(100, 5, 6), STD)
        self.assertAlmostEqual(s, -1.0 - 2 * 0.11)
        self.assertEqual(c.fp, 2)
        # right after the window: a small penalty, growing with distance
        near, _ = nab.score_detections(t, det(100, 20, 30), STD)
        far, _ = nab.score_detections(t, det(100, 20, 60), STD)
        self.assertAlmostEqual(near, SIG_START + 0.11 * nab.scaled_sigmoid(0.1))
        self.assertAlmostEqual(far, SIG_START - 0.11)  # y = 3.1 -> sigma = -1
        self.assertGreater(near, far)
        # reward_low_FP_rate doubles the penalty
        s2, _ = nab.score_detections(t, det(100, 5), LOW_FP)
        self.assertAlmostEqual(s2, -1.0 - 0.22)

    def test_probation_is_ignored(self):
        t = truth(100, [(50, 59)], probation=15)
        s, c = nab.score_detections(t, det(100, 0, 3, 14), STD)
        self.assertEqual((s, c.fp), (-1.0, 0))
        s, c = nab.score_detections(t, det(100, 15), STD)
        self.assertAlmostEqual(s, -1.0 - 0.11)
        self.assertEqual(c.fp, 1)

    def test_file_without_windows(self):
        t = truth(50, [])
        s, c = nab.score_detections(t, det(50, 10, 40), STD)
        self.assertAlmostEqual(s, -0.22)
        self.assertEqual((c.tp, c.fn, c.fp), (0, 0, 2))


class Threshold(unittest.TestCase):
    def brute(self, tr, sc, prof):
        cands = sorted({float(v) for s in sc.values() for v in s}) + [math.inf]
        return max(nab.score_at_threshold(tr, sc, prof, c)[0] for c in cands)

    def test_sweep_matches_brute_force(self):
        rng = np.random.default_rng(7)
        for trial in range(30):
            tr, sc = {}, {}
            for f in range(3):
                n = int(rng.integers(40, 120))
                nw = int(rng.integers(0, 3))
                starts = sorted(rng.choice(np.arange(10, n - 12, 12), size=nw, replace=False)) if nw else []
                wins = [(int(s), int(s) + int(rng.integers(3, 10))) for s in starts]
                t = nab.FileTruth(f"c/f{f}.csv", n, wins, int(rng.integers(0, 8))).prepare()
                tr[t.name] = t
                # coarse scores so that ties happen
                sc[t.name] = np.round(rng.random(n), 1)
            for prof in (STD, LOW_FP, LOW_FN):
                thr, best = nab.optimise_threshold(tr, sc, prof)
                self.assertAlmostEqual(best, self.brute(tr, sc, prof), places=9)
                self.assertAlmostEqual(best, nab.score_at_threshold(tr, sc, prof, thr)[0], places=9)

    def test_null_threshold_is_infinite(self):
        t = truth(50, [(20, 25)])
        thr, best = nab.optimise_threshold({"a": t}, {"a": np.zeros(50)}, STD)
        # firing everywhere is worse than never firing
        self.assertTrue(math.isinf(thr))
        self.assertEqual(best, -1.0)

    def test_normalisation(self):
        self.assertEqual(nab.normalise(-10.0, 10, STD), 0.0)
        self.assertEqual(nab.normalise(10.0, 10, STD), 100.0)
        self.assertEqual(nab.normalise(-20.0, 10, LOW_FN), 0.0)
        self.assertAlmostEqual(nab.normalise(10 * SIG_START, 10, STD), 100 * (SIG_START + 1) / 2)


class EndToEnd(unittest.TestCase):
    """A tiny dataset on disk: scorer CLI, sanity detectors, result-file lookup, z-score."""

    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        d = self.tmp.name
        self.dataset = os.path.join(d, "ds")
        os.makedirs(os.path.join(self.dataset, "data", "catA"))
        os.makedirs(os.path.join(self.dataset, "labels"))
        os.makedirs(os.path.join(self.dataset, "config"))
        rng = np.random.default_rng(1)
        base = datetime(2021, 3, 1)
        windows = {}
        for name, spike in (("one.csv", 300), ("two.csv", None)):
            n = 400
            x = 10 + rng.normal(0, 1, n)
            ts = [base + timedelta(minutes=5 * i) for i in range(n)]
            if spike is not None:
                x[spike] += 25
                windows[f"catA/{name}"] = [[f"{ts[spike - 10]:%Y-%m-%d %H:%M:%S}.000000",
                                            f"{ts[spike + 10]:%Y-%m-%d %H:%M:%S}.000000"]]
            else:
                windows[f"catA/{name}"] = []
            with open(os.path.join(self.dataset, "data", "catA", name), "w", newline="") as f:
                w = csv.writer(f)
                w.writerow(["timestamp", "value"])
                for t, v in zip(ts, x):
                    w.writerow([f"{t:%Y-%m-%d %H:%M:%S}", f"{v:.4f}"])
        windows["otherCat/not_present.csv"] = [["2020-01-01 00:00:00.000000", "2020-01-02 00:00:00.000000"]]
        with open(os.path.join(self.dataset, "labels", "combined_windows.json"), "w") as f:
            json.dump(windows, f)
        profiles = {p.name: {"CostMatrix": {"tpWeight": p.tp, "fnWeight": p.fn, "fpWeight": p.fp, "tnWeight": 1.0}}
                    for p in (STD, LOW_FP, LOW_FN)}
        with open(os.path.join(self.dataset, "config", "profiles.json"), "w") as f:
            json.dump(profiles, f)

    def tearDown(self):
        self.tmp.cleanup()

    def test_only_present_files_count(self):
        tr = nab.load_truth(self.dataset)
        self.assertEqual(sorted(tr), ["catA/one.csv", "catA/two.csv"])
        self.assertEqual(sum(len(t.windows) for t in tr.values()), 1)
        self.assertEqual(tr["catA/one.csv"].windows, [(290, 310)])

    def test_sanity_detectors(self):
        tr = nab.load_truth(self.dataset)
        profs = nab.load_profiles(self.dataset)
        sanity = score_cli.sanity_scores(tr)
        null = nab.score_scores(tr, sanity["null"], profs)
        start = nab.score_scores(tr, sanity["window_start"], profs)
        for p in nab.PROFILES:
            self.assertEqual(null[p].normalised, 0.0)
            self.assertGreater(start[p].normalised, 99.0)
            self.assertLessEqual(start[p].normalised, 100.0)

    def test_zscore_results_and_scoring(self):
        out = os.path.join(self.tmp.name, "results", "zscore")
        self.assertEqual(zscore.run(self.dataset, out, window=50), 2)
        with open(os.path.join(out, "catA", "one.csv")) as f:
            rows = list(csv.DictReader(f))
        self.assertEqual(list(rows[0]), ["timestamp", "value", "anomaly_score", "label"])
        self.assertEqual(len(rows), 400)
        s = np.array([float(r["anomaly_score"]) for r in rows])
        self.assertTrue(np.all((s >= 0) & (s <= 1)))
        self.assertTrue(np.all(s[:50] == 0))
        self.assertEqual(int(np.argmax(s)), 300)
        self.assertEqual(sum(int(r["label"]) for r in rows), 21)
        json_out = os.path.join(self.tmp.name, "scores.json")
        with contextlib.redirect_stdout(io.StringIO()):
            self.assertEqual(score_cli.main(["--dataset", self.dataset, out, "--json", json_out]), 0)
        with open(json_out) as f:
            rep = json.load(f)
        # the injected spike sits 10 records into a 21-record window: early, few false positives
        self.assertGreater(rep["zscore"]["standard"]["normalised"], 70.0)
        self.assertEqual(rep["zscore"]["standard"]["tp"], 1)

    def test_nab_style_result_names_and_missing_files(self):
        out = os.path.join(self.tmp.name, "res")
        os.makedirs(os.path.join(out, "catA"))
        tr = nab.load_truth(self.dataset)
        for rel, t in tr.items():
            name = os.path.basename(rel)
            with open(os.path.join(out, "catA", "mydet_" + name), "w") as f:
                f.write("timestamp,value,anomaly_score,label\n")
                for _ in range(t.n):
                    f.write("2021-03-01 00:00:00,1,0.0,0\n")
        self.assertEqual(sorted(nab.load_results(out, tr)), sorted(tr))
        os.remove(os.path.join(out, "catA", "mydet_two.csv"))
        with self.assertRaises(FileNotFoundError):
            nab.load_results(out, tr)


class RollingZscore(unittest.TestCase):
    def test_no_lookahead_and_values(self):
        x = np.array([1.0, 2.0, 3.0, 4.0, 100.0, 5.0])
        z = zscore.rolling_zscore(x, 4)
        self.assertTrue(np.all(np.isnan(z[:4])))
        past = x[:4]
        self.assertAlmostEqual(z[4], abs(100 - past.mean()) / past.std())
        # changing a future value does not change earlier scores
        y = x.copy()
        y[5] = -1e9
        self.assertTrue(np.array_equal(zscore.rolling_zscore(y, 4)[:5], z[:5], equal_nan=True))

    def test_constant_history(self):
        z = zscore.rolling_zscore(np.array([3.0, 3.0, 3.0, 3.0, 4.0]), 3)
        self.assertEqual(z[3], 0.0)
        self.assertTrue(np.isinf(z[4]))
        s = zscore.anomaly_score(z)
        self.assertEqual(list(s), [0.0, 0.0, 0.0, 0.0, 1.0])

    def test_chunking_is_invisible(self):
        rng = np.random.default_rng(3)
        x = rng.normal(size=zscore.CHUNK * 2 + 37)
        z = zscore.rolling_zscore(x, 25)
        i = zscore.CHUNK + 100
        self.assertAlmostEqual(z[i], abs(x[i] - x[i - 25:i].mean()) / x[i - 25:i].std())


if __name__ == "__main__":
    unittest.main()

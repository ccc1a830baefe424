"""Tests for the NAB scorer and the z-score baseline: small synthetic cases, plus one test that
pins the official NAB scorer's numbers on the project's NAB subset.

run: python3 -m unittest discover -s models/nab -v

The subset is looked for beside the repository (../shared/datasets/nab from the repository root)
or at $NAB_DATASET; without it, that one test is skipped.
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
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
NAB_DATASET = os.environ.get("NAB_DATASET") or os.path.join(REPO, "..", "shared", "datasets", "nab")


def tp_weight(i, s, e):
    """NAB's true-positive weight of record i in window s..e (before A_TP)."""
    return nab.scaled_sigmoid(-(e - i + 1) / (e - s + 1)) / SIG_START


def fp_weight(i, e, length):
    """NAB's false-positive weight of record i after a window ending at e (before A_FP)."""
    return nab.scaled_sigmoid((i - e) / (length - 1))


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
        # inside: sigma(-(19 - i + 1) / 10) / sigma(-1) -> exactly 1 at the first record
        self.assertEqual(t.weight[10], 1.0)
        self.assertAlmostEqual(t.weight[19], nab.scaled_sigmoid(-0.1) / SIG_START)
        self.assertTrue(np.all(np.diff(t.weight[10:20]) < 0))
        # after the window: y = (i - 19) / (10 - 1)
        self.assertAlmostEqual(t.weight[20], nab.scaled_sigmoid(1 / 9))
        self.assertAlmostEqual(t.weight[28], nab.scaled_sigmoid(1.0))
        # before any window: full penalty
        self.assertTrue(np.all(t.weight[:10] == -1.0))
        self.assertEqual(list(t.window_id[9:21]), [-1] + [0] * 10 + [-1])

    def test_fp_between_windows_uses_preceding_window(self):
        t = truth(40, [(5, 9), (30, 39)])
        # record 12 follows window 0 (end 9, length 5): y = 3 / (5 - 1)
        self.assertAlmostEqual(t.weight[12], nab.scaled_sigmoid(0.75))
        self.assertEqual(t.weight[29], -1.0)  # y = 20/4 > 3

    def test_timestamps_to_indices(self):
        base = datetime(2020, 1, 1)
        ts = [base + timedelta(minutes=5 * i) for i in range(20)]
        w = nab.windows_to_indices(ts, [["2020-01-01 00:10:00.000000", "2020-01-01 00:30:00.000000"]])
        self.assertEqual(w, [(2, 6)])  # both ends inclusive
        # bounds falling between records: NAB needs both bounds to be record timestamps
        with self.assertRaises(ValueError):
            nab.windows_to_indices(ts, [["2020-01-01 00:11:00", "2020-01-01 00:30:00"]])
        with self.assertRaises(ValueError):
            nab.windows_to_indices(ts, [["2020-01-01 00:10:00", "2020-01-01 00:29:59"]])
        with self.assertRaises(ValueError):
            nab.windows_to_indices(ts, [["2021-01-01 00:00:00", "2021-01-02 00:00:00"]])

    def test_repeated_timestamps(self):
        base = datetime(2020, 1, 1)
        ts = [base + timedelta(hours=i) for i in range(5)] + [base + timedelta(hours=4)] * 3 + \
             [base + timedelta(hours=5 + i) for i in range(5)]
        w = nab.windows_to_indices(ts, [["2020-01-01 04:00:00", "2020-01-01 06:00:00"]])
        self.assertEqual(w, [(4, 9)])  # first 04:00 .. first 06:00, by position

    def test_backwards_jump_is_positional(self):
        # a clock jumping back inside a window: NAB's window is every record between the first
        # record carrying the start and the first carrying the end, whatever their timestamps
        base = datetime(2020, 1, 1)
        hours = [0, 1, 2, 3, 4, 1, 2, 5, 6, 7]
        ts = [base + timedelta(hours=h) for h in hours]
        w = nab.windows_to_indices(ts, [["2020-01-01 03:00:00", "2020-01-01 05:00:00"]])
        self.assertEqual(w, [(3, 7)])


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
        self.assertEqual(s, 1.0)  # exactly A_TP
        self.assertEqual((c.tp, c.fn, c.fp), (1, 0, 0))

    def test_only_earliest_detection_in_window_counts(self):
        t = truth(100, [(20, 29)])
        early, _ = nab.score_detections(t, det(100, 22), STD)
        both, c = nab.score_detections(t, det(100, 22, 23, 24, 29), STD)
        self.assertAlmostEqual(early, both)
        self.assertEqual(c.tp, 1)
        self.assertAlmostEqual(early, nab.scaled_sigmoid(-(29 - 22 + 1) / 10) / SIG_START)
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
        self.assertAlmostEqual(near, 1.0 + 0.11 * nab.scaled_sigmoid(1 / 9))
        self.assertAlmostEqual(far, 1.0 - 0.11)  # y = 31/9 > 3 -> sigma = -1
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
        """(threshold, score): every candidate scored directly, highest threshold first; the first
        one reaching the maximum wins."""
        cands = [math.inf] + sorted({float(v) for s in sc.values() for v in s}, reverse=True)
        got = [(c, nab.score_at_threshold(tr, sc, prof, c)[0]) for c in cands]
        top = max(s for _, s in got)
        return next((c, s) for c, s in got if s > top - 1e-9)

    def test_sweep_matches_brute_force(self):
        rng = np.random.default_rng(7)
        for trial in range(30):
            tr, sc = {}, {}
            for f in range(3):
                n = int(rng.integers(40, 120))
                nw = int(rng.integers(0, 3))
                starts = sorted(rng.choice(np.arange(10, n - 12, 12), size=nw, replace=False)) if nw else []
                wins = [(int(s), int(s) + int(rng.integers(3, 10))) for s in starts]
                # probation up to 25 records: some windows are dropped, some straddle its end
                t = nab.FileTruth(f"c/f{f}.csv", n, wins, int(rng.integers(0, 26))).prepare()
                tr[t.name] = t
                # coarse scores so that ties happen
                sc[t.name] = np.round(rng.random(n), 1)
            for prof in (STD, LOW_FP, LOW_FN):
                thr, best = nab.optimise_threshold(tr, sc, prof)
                b_thr, b_best = self.brute(tr, sc, prof)
                self.assertAlmostEqual(best, b_best, places=9)
                self.assertEqual(thr, b_thr)  # ties: the highest threshold
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
            self.assertAlmostEqual(start[p].normalised, 100.0, places=9)

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


class OfficialRules(unittest.TestCase):
    """The four points where NAB's official scorer differed from this port's first version."""

    # rule 1: a true positive's weight is sigma(position) / sigma(-1)
    def test_tp_at_first_record_earns_exactly_a_tp(self):
        t = truth(100, [(20, 39)])
        for prof in (STD, LOW_FP, LOW_FN, nab.Profile("x", tp=2.5, fp=0.11, fn=1.0)):
            s, c = nab.score_detections(t, det(100, 20), prof)
            self.assertEqual(s, prof.tp)
            self.assertEqual(c.tp, 1)

    def test_tp_weight_is_divided_by_sigma_at_first_record(self):
        t = truth(100, [(20, 39)])  # L = 20
        for i in (21, 30, 39):
            s, _ = nab.score_detections(t, det(100, i), STD)
            self.assertAlmostEqual(s, nab.scaled_sigmoid(-(39 - i + 1) / 20) / SIG_START, places=12)
        s, _ = nab.score_detections(t, det(100, 39), STD)  # last record: y = -1/L, still > 0
        self.assertAlmostEqual(s, nab.scaled_sigmoid(-1 / 20) / SIG_START, places=12)
        self.assertGreater(s, 0.0)

    # rule 2: a false positive after a window is at distance / (L - 1)
    def test_fp_after_window_uses_length_minus_one(self):
        t = truth(60, [(10, 14)])  # L = 5: y = (i - 14) / 4
        for i, y in ((15, 0.25), (18, 1.0), (26, 3.0)):
            s, c = nab.score_detections(t, det(60, 10, i), STD)
            self.assertAlmostEqual(s, 1.0 + 0.11 * nab.scaled_sigmoid(y), places=12)
            self.assertEqual(c.fp, 1)
        # y = 3 exactly is still on the sigmoid; only y > 3 is -1
        self.assertNotEqual(t.weight[26], -1.0)
        self.assertEqual(t.weight[27], -1.0)  # y = 13/4

    def test_one_record_window_followed_by_records_is_refused(self):
        # NAB's scorer divides by L - 1 = 0 there
        with self.assertRaises(ValueError):
            truth(30, [(10, 10)])
        t = truth(11, [(10, 10)])  # nothing after it: fine
        s, _ = nab.score_detections(t, det(11, 10), STD)
        self.assertEqual(s, 1.0)

    # rule 3: a window entirely inside the probationary period is dropped
    def test_window_inside_probation_is_dropped(self):
        t = truth(100, [(5, 9), (50, 59)], probation=15)
        self.assertEqual(t.scored, [False, True])
        s, c = nab.score_detections(t, np.zeros(100, bool), STD)
        self.assertEqual((s, c.fn, c.dropped), (-1.0, 1, 1))  # not -2: the first window is not missed
        s, c = nab.score_detections(t, det(100, 7, 50), STD)  # a detection in it counts for nothing
        self.assertEqual((s, c.tp, c.fn, c.fp), (1.0, 1, 0, 0))
        # false positives after it are still measured from its right edge: y = (16 - 9) / 4
        self.assertAlmostEqual(t.weight[16], nab.scaled_sigmoid(1.75))

    def test_window_straddling_probation_end_is_scored(self):
        t = truth(100, [(10, 19)], probation=15)
        self.assertEqual(t.scored, [True])
        s, c = nab.score_detections(t, det(100, 12), STD)  # only a probationary record fired
        self.assertEqual((s, c.fn), (-1.0, 1))
        s, c = nab.score_detections(t, det(100, 12, 15), STD)
        self.assertAlmostEqual(s, tp_weight(15, 10, 19))
        self.assertEqual(c.tp, 1)

    def test_normalisation_with_dropped_window(self):
        # NAB: null = the never-firing detector's score (dropped windows are not missed),
        # perfect = A_TP * every window of the label file (dropped ones too)
        t = truth(100, [(5, 9), (50, 59)], probation=15)
        tr = {t.name: t}
        self.assertEqual(nab.null_score(tr, STD), -1.0)
        self.assertEqual(nab.null_score(tr, LOW_FN), -2.0)
        sc = np.zeros(100)
        sc[50] = 1.0
        res = nab.score_scores(tr, {t.name: sc}, {p.name: p for p in (STD, LOW_FP, LOW_FN)})
        self.assertEqual(res["standard"].raw, 1.0)
        self.assertAlmostEqual(res["standard"].normalised, 100 * (1 - (-1)) / (2 - (-1)))
        self.assertAlmostEqual(res["reward_low_FN_rate"].normalised, 100 * (1 - (-2)) / (2 - (-2)))
        self.assertEqual(res["standard"].counts.dropped, 1)
        null = nab.score_scores(tr, {t.name: np.zeros(100)}, {p.name: p for p in (STD, LOW_FP, LOW_FN)})
        for p in nab.PROFILES:
            self.assertEqual(null[p].normalised, 0.0)
        self.assertEqual(nab.normalise(-1.0, 2, STD, null_raw=-1.0), 0.0)
        self.assertEqual(nab.normalise(2.0, 2, STD, null_raw=-1.0), 100.0)

    # rule 4: every distinct score is a candidate; ties go to the highest threshold
    def test_threshold_is_an_exact_score_value(self):
        n = 200
        t = truth(n, [(100, 119)])
        sc = np.zeros(n)
        sc[150:] = np.linspace(0.1, 0.3141592652, n - 150)  # would-be false positives after the window
        sc[100] = 0.3141592653  # the window's first record, just above all of them
        thr, best = nab.optimise_threshold({"a": t}, {"a": sc}, STD)
        self.assertEqual(thr, 0.3141592653)
        self.assertEqual(best, 1.0)

    def test_ties_go_to_the_highest_threshold(self):
        t = truth(100, [(20, 29)])
        sc = np.zeros(100)
        sc[20] = 0.9   # the window's first record
        sc[25] = 0.7   # a later record of the same window: lowering to 0.7 changes nothing
        sc[27] = 0.5
        thr, best = nab.optimise_threshold({"a": t}, {"a": sc}, STD)
        self.assertEqual((thr, best), (0.9, 1.0))
        # and across files: the same total at 0.8 and 0.6 -> 0.8
        u = truth(50, [(10, 19)])
        su = np.zeros(50)
        su[10] = 0.8
        su[15] = 0.6
        thr, best = nab.optimise_threshold({"a": t, "b": u}, {"a": sc, "b": su}, STD)
        self.assertEqual((thr, best), (0.8, 2.0))

    def test_never_firing_wins_a_tie(self):
        # firing at 0.5 turns the missed window (-1) into a true positive (+1) and adds two false
        # positives before it (-1 each): the total is unchanged, so "never fire" is kept
        t = truth(100, [(50, 59)])
        sc = np.zeros(100)
        sc[50] = 0.5
        sc[[0, 1]] = 0.5
        prof = nab.Profile("tie", tp=1.0, fp=1.0, fn=1.0)
        thr, best = nab.optimise_threshold({"a": t}, {"a": sc}, prof)
        self.assertTrue(math.isinf(thr))
        self.assertEqual(best, -1.0)


class OfficialNumbers(unittest.TestCase):
    """NAB's official scorer on the 35-file subset gives these numbers (its SOURCES.md)."""

    @classmethod
    def setUpClass(cls):
        results = os.path.join(NAB_DATASET, "results", "numenta")
        if not (os.path.isfile(os.path.join(NAB_DATASET, "labels", "combined_windows.json"))
                and os.path.isdir(results)):
            raise unittest.SkipTest(f"NAB subset with results/numenta not found at {NAB_DATASET} "
                                    "(default: ../shared/datasets/nab from the repository root; "
                                    "set NAB_DATASET to look elsewhere)")
        cls.truth = nab.load_truth(NAB_DATASET)
        cls.profiles = nab.load_profiles(NAB_DATASET)
        cls.numenta = nab.score_scores(cls.truth, nab.load_results(results, cls.truth), cls.profiles)
        cls.null = nab.score_scores(cls.truth, score_cli.sanity_scores(cls.truth)["null"], cls.profiles)

    def test_subset(self):
        self.assertEqual(len(self.truth), 35)
        self.assertEqual(sum(len(t.windows) for t in self.truth.values()), 55)

    def test_numenta(self):
        r = self.numenta
        self.assertEqual([round(r[p].normalised, 2) for p in nab.PROFILES], [66.59, 60.81, 71.06])
        self.assertEqual(round(r["standard"].raw, 3), 18.244)
        self.assertEqual([round(r[p].threshold, 4) for p in nab.PROFILES], [0.5555, 0.6021, 0.5555])

    def test_null(self):
        r = self.null
        self.assertEqual([r[p].normalised for p in nab.PROFILES], [0.0, 0.0, 0.0])
        self.assertEqual([r[p].raw for p in nab.PROFILES], [-55.0, -55.0, -110.0])
        self.assertTrue(all(math.isinf(r[p].threshold) for p in nab.PROFILES))


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

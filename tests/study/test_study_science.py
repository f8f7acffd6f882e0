"""The ranking study's science: statistics against scipy and hand cases (partial tau included), the stratified
selection (deterministic, a function of costs and seed only), the reference figure, and the verdict paths."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy import stats as sp

from edgeflownas.model.cost import CostTable
from edgeflownas.nas.arch_codec import EDGEFLOWNET_BASELINE, NUM_BLOCKS
from edgeflownas.study.analysis import MIN_NOISE_CEILING, analyze, summary_lines
from edgeflownas.study.reference import retrain_figure, subnet_reference
from edgeflownas.study.selection import hamming, stratified_codes, total_depth
from edgeflownas.study.stats import bootstrap_interval, chi2_sf, friedman, kendall_tau, kruskal_wallis, partial_tau


# ----------------------------------------------------------------------------------------------- statistics
def _partial_from_scipy(x, y, z):
    xy, xz, yz = (sp.kendalltau(a, b).statistic for a, b in ((x, y), (x, z), (y, z)))
    return (xy - xz * yz) / math.sqrt((1 - xz ** 2) * (1 - yz ** 2))


def test_kendall_and_partial_tau_match_scipy_on_random_data_with_ties():
    rng = np.random.default_rng(5)
    for _ in range(30):
        z = rng.integers(4, 13, 24).astype(float)          # total depth: many ties
        x = z + rng.normal(0, 2, 24)
        y = z + rng.normal(0, 2, 24)
        assert kendall_tau(x, z) == pytest.approx(sp.kendalltau(x, z).statistic, abs=1e-12)
        assert partial_tau(x, y, z) == pytest.approx(_partial_from_scipy(x, y, z), abs=1e-12)


def test_partial_tau_hand_cases():
    # z ranks x exactly (tau_xz = 1): nothing is left of x given z, partial tau undefined
    assert math.isnan(partial_tau([1, 2, 3, 4], [1, 3, 2, 4], [1, 2, 3, 4]))
    # Hand-counted over the 6 pairs: x = 1..4, y = [1,3,2,4] (5 C, 1 D: tau_xy = 2/3), z = [2,4,1,3]
    # (x vs z: 3 C, 3 D: tau_xz = 0; y vs z: 4 C, 2 D: tau_yz = 1/3) -> (2/3 - 0) / sqrt(1 * 8/9) = 1/sqrt(2)
    x, y, z = [1, 2, 3, 4], [1, 3, 2, 4], [2, 4, 1, 3]
    assert (kendall_tau(x, y), kendall_tau(x, z), kendall_tau(y, z)) == pytest.approx((2 / 3, 0.0, 1 / 3))
    assert partial_tau(x, y, z) == pytest.approx(1 / math.sqrt(2))
    # x and y both equal to z plus the same swap: tau_xy = 1, tau_xz = tau_yz = 2/3 -> (1 - 4/9) / (5/9) = 1
    assert partial_tau([1, 3, 2, 4], [1, 3, 2, 4], [1, 2, 3, 4]) == pytest.approx(1.0)
    # a constant z leaves tau_xz undefined
    assert math.isnan(partial_tau(x, y, [1, 1, 1, 1]))
    with pytest.raises(ValueError, match="paired"):
        partial_tau([1, 2], [1, 2], [1, 2, 3])


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")  # scipy on all-equal groups
def test_kruskal_wallis_and_its_p_value_match_scipy_with_ties_and_unequal_groups():
    rng = np.random.default_rng(7)
    for _ in range(40):
        groups = [list(rng.choice([0.9, 1.0, 1.0, 1.1, 1.25, 2.0], size=rng.integers(1, 5)) + rng.integers(0, 2))
                  for _ in range(rng.integers(2, 28))]
        h, df, p = kruskal_wallis(groups)
        expected = sp.kruskal(*groups)
        assert (h, df, p) == pytest.approx((expected.statistic, len(groups) - 1, expected.pvalue), rel=1e-9, abs=1e-12,
                                           nan_ok=True)  # every value equal: both undefined
    for df in (1, 2, 3, 7, 26, 80):
        for x in (1e-3, 0.5, 1.0, 5.0, 22.16, 60.0, 200.0):
            assert chi2_sf(x, df) == pytest.approx(sp.chi2.sf(x, df), rel=1e-9, abs=1e-15)


def test_friedman_and_kendalls_w_match_scipy_with_ties_and_hand_cases():
    rng = np.random.default_rng(11)
    for _ in range(40):
        subnets, seeds = int(rng.integers(3, 28)), int(rng.integers(2, 6))
        figures = rng.choice([0.9, 1.0, 1.0, 1.1, 1.25, 2.0], size=(seeds, subnets)) + rng.normal(0, 0.01, seeds)[:, None]
        q, df, p, w = friedman(figures.tolist())
        expected = sp.friedmanchisquare(*figures.T)
        assert (q, df, p) == pytest.approx((expected.statistic, subnets - 1, expected.pvalue), rel=1e-9, abs=1e-12)
        assert w == pytest.approx(expected.statistic / (seeds * (subnets - 1)), rel=1e-12)
    # two seeds that order three subnets identically: rank sums 2, 4, 6: 12/24 * 56 - 24 = 4 = n (k - 1), so W = 1
    assert friedman([[0.9, 1.0, 1.1], [1.5, 1.6, 1.7]]) == pytest.approx((4.0, 2, math.exp(-2.0), 1.0))
    # a seed that moves every subnet alike does not hide the order: Kruskal-Wallis sees overlap, Friedman does not
    offsets = [[1.0 + 0.3 * seed + 0.01 * j for j in range(9)] for seed in range(3)]
    assert friedman(offsets)[2] < 0.01 < kruskal_wallis([list(column) for column in zip(*offsets)])[2]
    assert math.isnan(friedman([[1.0, 1.0], [2.0, 2.0]])[0])      # every block all ties: undefined
    assert math.isnan(friedman([[1.0, 2.0, 3.0]])[2])               # one block: nothing to compare
    assert math.isnan(friedman([[1.0, 2.0], [1.0]])[2])             # ragged blocks: no test


def test_kruskal_wallis_hand_cases():
    # ranks 1..6: groups {1,2,3} and {4,5,6}, rank sums 6 and 15: 12/42 * (36/3 + 225/3) - 21 = 27/7
    h, df, p = kruskal_wallis([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    assert (h, df) == (pytest.approx(27 / 7), 1)
    assert p == pytest.approx(math.erfc(math.sqrt(27 / 7 / 2)))  # chi-square with 1 df: erfc(sqrt(x / 2))
    assert math.isnan(kruskal_wallis([[1.0, 1.0], [1.0]])[0])       # every value equal: undefined
    assert math.isnan(kruskal_wallis([[1.0, 2.0]])[2])              # one group: nothing to compare
    assert math.isnan(kruskal_wallis([[1.0, float("nan")], [2.0, 3.0]])[2])  # a NaN figure: no test
    assert chi2_sf(0.0, 3) == 1.0 and chi2_sf(2.0, 2) == pytest.approx(math.exp(-1.0))


def test_bootstrap_interval_against_an_independent_numpy_bootstrap():
    rng = np.random.default_rng(1)
    x = rng.normal(size=15)
    y = x + rng.normal(size=15)
    low, high = bootstrap_interval([list(x), list(y)], kendall_tau, resamples=300, level=0.9, seed=3)
    # same resampling (random.Random(3).randrange), statistic by scipy, percentiles by hand
    import random
    r = random.Random(3)
    values = []
    for _ in range(300):
        picks = [r.randrange(15) for _ in range(15)]
        value = sp.kendalltau(x[picks], y[picks]).statistic
        if not math.isnan(value):
            values.append(value)
    values.sort()
    assert low == pytest.approx(values[int(math.floor(0.05 * len(values)))])
    assert high == pytest.approx(values[int(math.ceil(0.95 * len(values))) - 1])
    assert low <= kendall_tau(x, y) <= high


# ----------------------------------------------------------------------------------------------- selection
def _table(seed: int = 0) -> CostTable:
    rng = np.random.default_rng(seed)
    macs = [sorted(int(v) for v in rng.integers(1000, 90000, 3)) for _ in range(NUM_BLOCKS)]
    params = [sorted(int(v) for v in rng.integers(10, 900, 3)) for _ in range(NUM_BLOCKS)]
    blocks = tuple(tuple(zip(p, m)) for p, m in zip(params, macs))  # [block][option] -> (params, MACs)
    return CostTable(8, 8, (100, 5000), blocks)


def test_stratified_selection_is_deterministic_and_covers_every_depth_and_macs_bin():
    table = _table()
    codes = stratified_codes(table, macs_bins=3, seed=0)
    assert codes == stratified_codes(table, macs_bins=3, seed=0)
    assert len(codes) == 27 == len(set(codes))
    assert [total_depth(c) for c in codes] == [d for d in range(4, 13) for _ in range(3)]
    # within a depth, the three picks come from the low / middle / high MAC thirds of that depth's codes
    for depth in range(4, 13):
        all_macs = sorted(table.cost(c)["macs"] for c in itertools.product(range(3), repeat=9)
                          if total_depth(c) == depth)
        picks = [table.cost(c)["macs"] for c in codes if total_depth(c) == depth]
        thirds = np.array_split(np.array(all_macs), 3)
        for value, third in zip(picks, thirds):
            assert third.min() <= value <= third.max()
    assert stratified_codes(table, macs_bins=3, seed=1) != codes           # the seed matters
    assert len(stratified_codes(table, macs_bins=4, seed=0)) == 36


def test_selection_depends_on_nothing_but_costs_and_seed():
    """The choice is made from the cost table alone: no argument could carry a result."""
    import inspect
    assert list(inspect.signature(stratified_codes).parameters) == ["table", "macs_bins", "seed"]


def test_total_depth_and_hamming():
    assert total_depth(EDGEFLOWNET_BASELINE) == 4
    assert total_depth((2, 2, 2, 2, 0, 0, 0, 0, 0)) == 12
    assert hamming(EDGEFLOWNET_BASELINE, EDGEFLOWNET_BASELINE) == 0
    assert hamming((0,) * 9, (2,) * 9) == 9


# ----------------------------------------------------------------------------------------------- reference
def test_reference_is_last_epochs_mean_and_seed_median_with_stuck_runs_flagged():
    run = retrain_figure([2.0, 1.85, None, 2.16, 1.74, 1.81], zero_flow_epe=3.0)
    assert run["epe"] == pytest.approx((2.16 + 1.74 + 1.81) / 3) and run["stuck"] is False
    assert run["epochs_averaged"] == 3 and run["last"] == 1.81
    assert retrain_figure([2.9, 2.95, 2.96], zero_flow_epe=3.0)["stuck"] is True   # > 0.95 x 3.0
    assert subnet_reference({1: {"epe": 1.0}, 2: {"epe": 3.0}, 3: {"epe": 1.2}}) == 1.2


# ----------------------------------------------------------------------------------------------- verdict
def _subnets(noise: float, supernet_noise: float, seed: int = 0, stuck: int = 0):
    rng = np.random.default_rng(seed)
    table = _table()
    codes = stratified_codes(table, 3, 0)
    truth = rng.normal(size=len(codes))
    subnets = []
    for index, code in enumerate(codes):
        standalone = {s: {"epe": float(2 + truth[index] + rng.normal(0, noise)), "zero_flow_epe": 3.0,
                          "stuck": index * 3 + s - 1 < stuck} for s in (1, 2, 3)}
        subnets.append({"code": list(code), "name": "a" + "".join(map(str, code)), "depth": total_depth(code),
                        **table.cost(code), "standalone": standalone,
                        "supernet_epe": {s: float(truth[index] + rng.normal(0, supernet_noise)) for s in (42, 7)}})
    return subnets


def test_cannot_tell_when_the_noise_ceiling_is_low():
    doc = analyze(_subnets(noise=5.0, supernet_noise=0.1), resamples=200)
    assert doc["noise_ceiling_tau"] < MIN_NOISE_CEILING
    assert doc["verdict"] == "cannot tell" and "noise ceiling" in doc["verdict_reason"]
    assert all(t["met"] is None for t in doc["targets"].values())
    assert any("cannot tell" in line for line in summary_lines(doc))


def test_cannot_tell_says_whether_the_architecture_moves_the_stand_alone_epe_at_all():
    # subnets that do not differ: the retrains' EPE is seed noise alone
    same = _subnets(noise=0.1, supernet_noise=0.1, seed=3)
    rng = np.random.default_rng(4)
    for s in same:
        for k in s["standalone"]:
            s["standalone"][k]["epe"] = float(1.0 + rng.normal(0, 0.1))
    doc = analyze(same, resamples=100)
    groups = [[s["standalone"][k]["epe"] for k in (1, 2, 3)] for s in same]
    effect = doc["architecture_effect"]
    expected = sp.friedmanchisquare(*groups)  # scipy: one argument per subnet, its seeds in one order
    assert (effect["q"], effect["p"]) == pytest.approx((expected.statistic, expected.pvalue), abs=1e-6)
    assert effect["kendall_w"] == pytest.approx(expected.statistic / (3 * 26), abs=1e-6)
    assert effect["kruskal_wallis"]["p"] == pytest.approx(sp.kruskal(*groups).pvalue, abs=1e-6)
    assert effect["df"] == 26 and effect["kruskal_wallis"]["df"] == 26 and effect["p"] >= 0.05
    assert doc["verdict"] == "cannot tell"
    assert "no detectable dependence on the architecture (Friedman p" in doc["verdict_reason"]
    assert any("architecture effect on the retrains (Friedman, seeds as blocks)" in line
               for line in summary_lines(doc))
    # subnets that do differ, but by less than the seeds scatter: the ceiling is low, the effect is there
    noisy = _subnets(noise=1.3, supernet_noise=0.1, seed=0)
    doc = analyze(noisy, resamples=100)
    assert doc["noise_ceiling_tau"] < MIN_NOISE_CEILING and doc["architecture_effect"]["p"] < 0.05
    assert doc["verdict"] == "cannot tell" and "does depend on the architecture" in doc["verdict_reason"]


def test_judged_when_the_reference_is_clean_and_every_key_is_there():
    doc = analyze(_subnets(noise=0.05, supernet_noise=0.05, stuck=2), resamples=200)
    assert doc["noise_ceiling_tau"] >= MIN_NOISE_CEILING
    assert doc["verdict"] == "beats trivial"
    for key in ("tau", "tau_ci95", "best_trivial_tau", "trivial", "partial_tau_given_depth",
                "partial_tau_given_depth_ci95", "partial_tau_given_macs", "partial_tau_given_macs_ci95",
                "noise_ceiling_tau", "noise_ceiling_tau_ci95", "supernet_seed_tau", "stuck_runs", "k", "verdict",
                "targets"):
        assert key in doc, key
    assert doc["k"] == 27 and doc["stuck_runs"]["count"] == 2 and doc["stuck_runs"]["of"] == 81
    # every figure recomputed independently with scipy
    ref = [float(np.median([s["standalone"][k]["epe"] for k in (1, 2, 3)])) for s in _subnets(0.05, 0.05, stuck=2)]
    subnets = _subnets(0.05, 0.05, stuck=2)
    taus = [sp.kendalltau([s["supernet_epe"][k] for s in subnets], ref).statistic for k in (7, 42)]
    assert doc["tau"] == pytest.approx(np.mean(taus), abs=1e-6)
    depth = [s["depth"] for s in subnets]
    partial = np.mean([_partial_from_scipy([s["supernet_epe"][k] for s in subnets], ref, depth) for k in (7, 42)])
    assert doc["partial_tau_given_depth"] == pytest.approx(partial, abs=1e-6)
    for name in ("macs", "params", "depth"):
        raw = sp.kendalltau([s[name] for s in subnets], ref).statistic
        assert doc["trivial"][name]["tau"] == pytest.approx(abs(raw), abs=1e-6)
        assert doc["trivial"][name]["sign"] == (1 if raw >= 0 else -1)
    assert doc["best_trivial_tau"] == max(e["tau"] for e in doc["trivial"].values())
    ceiling = np.mean([sp.kendalltau([s["standalone"][a]["epe"] for s in subnets],
                                     [s["standalone"][b]["epe"] for s in subnets]).statistic
                       for a, b in ((1, 2), (1, 3), (2, 3))])
    assert doc["noise_ceiling_tau"] == pytest.approx(ceiling, abs=1e-6)
    assert doc["supernet_seed_tau"] == pytest.approx(
        sp.kendalltau([s["supernet_epe"][42] for s in subnets], [s["supernet_epe"][7] for s in subnets]).statistic,
        abs=1e-6)


def test_a_supernet_that_only_knows_depth_does_not_beat_trivial():
    subnets = _subnets(noise=0.01, supernet_noise=0.0)
    # reference = depth + a little noise; supernet = depth exactly (what counting blocks gives)
    rng = np.random.default_rng(2)
    for s in subnets:
        for k in s["standalone"]:
            s["standalone"][k]["epe"] = s["depth"] + rng.normal(0, 0.3)
        s["supernet_epe"] = {k: float(s["depth"]) + rng.normal(0, 1e-3) for k in s["supernet_epe"]}
    doc = analyze(subnets, resamples=200)
    assert doc["noise_ceiling_tau"] >= MIN_NOISE_CEILING
    assert doc["verdict"] == "does not beat trivial"
    assert doc["targets"]["tau_above_best_trivial"]["met"] is False


def test_measured_latency_is_one_more_trivial_predictor_and_tau_macs_latency_is_stated():
    subnets = _subnets(noise=0.05, supernet_noise=0.05)
    rng = np.random.default_rng(4)
    for s in subnets:  # latency loosely follows MACs, and (here) predicts the reference best of all
        s["latency_ms"] = float(1.0 + 1e-5 * s["macs"] + rng.normal(0, 0.2))
    doc = analyze(subnets, resamples=200)
    ref = [float(np.median([s["standalone"][k]["epe"] for k in (1, 2, 3)])) for s in subnets]
    latency = [s["latency_ms"] for s in subnets]
    raw = sp.kendalltau(latency, ref).statistic
    assert doc["trivial"]["latency_ms"]["tau"] == pytest.approx(abs(raw), abs=1e-6)
    assert doc["best_trivial_tau"] == max(e["tau"] for e in doc["trivial"].values())
    assert doc["latency"]["tau_macs_latency"] == pytest.approx(
        sp.kendalltau([s["macs"] for s in subnets], latency).statistic, abs=1e-6)
    low, high = doc["latency"]["tau_macs_latency_ci95"]
    assert low <= doc["latency"]["tau_macs_latency"] <= high
    assert any("tau(MACs, measured latency)" in line for line in summary_lines(doc))
    subnets[0]["latency_ms"] = None  # one subnet unmeasured: no latency figures at all
    doc = analyze(subnets, resamples=200)
    assert "latency_ms" not in doc["trivial"] and "latency" not in doc

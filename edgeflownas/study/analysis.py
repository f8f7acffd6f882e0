"""study.json's numbers and verdict: does the supernet rank subnets better than counting blocks?

Input: one record per subnet -- ``code``, ``name``, ``macs``, ``params``,
``depth`` (total ResBlocks), ``supernet_epe`` {supernet seed: EPE} and
``standalone`` {retrain seed: ``reference.retrain_figure``}.  All over the K
subnets, lower EPE = better; intervals are percentile bootstraps over subnets:

- ``reference``: per subnet, the median over retrain seeds (``reference.py``);
- ``noise_ceiling_tau``: Kendall tau between two retrain seeds' figures, the
  mean over every pair of seeds -- how well one stand-alone training ranks
  another; no score can be judged against a reference noisier than that;
- ``tau`` (``spearman``): tau (rho) between one supernet's EPE and the
  reference, the mean over the supernet seeds (what one supernet is worth);
  ``per_supernet`` has each seed's figures; ``supernet_seed_tau``: tau between
  the supernet seeds' EPEs (the supernet's own ceiling);
- ``trivial``: tau of MACs, params, total depth and (when every subnet has a
  measured ``latency_ms``) latency against the reference, each
  with the sign the data favours (``sign`` +1: more = worse EPE, -1: more =
  better), i.e. |tau|; ``best_trivial_tau`` the best of them (choosing the sign
  after the fact favours the trivial predictors, never the supernet);
- ``partial_tau_given_depth`` / ``_given_macs``: partial tau of supernet EPE and
  reference given total depth / MACs (``stats.partial_tau``), mean over supernet
  seeds: what the supernet knows beyond the size of the subnet;
- ``hamming_tau``: tau of the Hamming distance from the EdgeFlowNet baseline
  code against the supernet EPE and against the reference (a warm-up from the
  baseline biases the first, not the second);
- ``stuck_runs``: retrains that never left the mean flow;
- ``architecture_effect``: does the stand-alone EPE depend on the
  architecture at all?  Friedman's test over the subnets' retrain figures
  with the retrain seeds as blocks (``stats.friedman``; every seed, stuck
  ones included): one seed gives every subnet the same data order, so what a
  seed's luck does to all subnets alike is not counted as noise; with
  Kendall's W, the seeds' agreement on the subnets' order (the noise
  ceiling's question).  ``kruskal_wallis`` in it: the same question with
  every retrain as an independent sample (``stats.kruskal_wallis``).  A large
  ``p`` says the subnets differ detectably no more than one subnet's seeds
  do -- a low noise ceiling then says there is no ranking to reproduce at
  this scale (or one too weak for the seeds measured), not a faulty
  measurement; with few seeds the chi-square p-values are approximations;
- ``latency`` (when measured): ``tau_macs_latency``, Kendall tau between MACs
  and measured latency over the K subnets -- how far MACs mislead on the
  machine that measured them.

Verdict: if the noise ceiling is below ``MIN_NOISE_CEILING`` (or undefined),
``"cannot tell"`` and why -- the targets are recorded as not judged.  Else
the targets: ``tau - best_trivial_tau >= TARGET_ABOVE_TRIVIAL`` and the lower
end of the partial tau given depth's interval ``> 0``; verdict ``"beats
trivial"`` if both are met, else ``"does not beat trivial"``.
"""

from __future__ import annotations

import itertools
import math
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence

from edgeflownas.nas.arch_codec import EDGEFLOWNET_BASELINE
from edgeflownas.study.reference import subnet_reference
from edgeflownas.study.selection import hamming
from edgeflownas.study.stats import (bootstrap_interval, friedman, kendall_tau, kruskal_wallis, partial_tau,
                                     spearman_rho)

MIN_NOISE_CEILING = 0.6
TARGET_ABOVE_TRIVIAL = 0.1
ARCHITECTURE_EFFECT_P = 0.05  # below it the verdict reason says the stand-alone EPE depends on the architecture
TRIVIAL = ("macs", "params", "depth")


def _round(value: Optional[float]) -> Optional[float]:
    return None if value is None or math.isnan(value) else round(float(value), 6)


def _mean(values: Sequence[float]) -> float:
    values = [v for v in values if not math.isnan(v)]
    return sum(values) / len(values) if values else float("nan")


def _mean_pairwise_tau(*columns: Sequence[float]) -> float:
    """Mean Kendall tau over every pair of columns."""
    return _mean([kendall_tau(a, b) for a, b in itertools.combinations(columns, 2)])


class _Measure:
    """A statistic over columns with its bootstrap interval, as study.json records it."""

    def __init__(self, resamples: int, level: float, seed: int) -> None:
        self.resamples, self.level, self.seed = resamples, level, seed
        self.suffix = f"_ci{round(level * 100)}"

    def __call__(self, name: str, statistic: Callable[..., float], *columns: Sequence[float]) -> Dict[str, Any]:
        low, high = bootstrap_interval(columns, statistic, self.resamples, self.level, self.seed)
        return {name: _round(statistic(*columns)), name + self.suffix: [_round(low), _round(high)]}


def analyze(subnets: Sequence[Mapping[str, Any]], resamples: int = 2000, level: float = 0.95,
            seed: int = 0) -> Dict[str, Any]:
    """The statistics, targets and verdict of study.json (see the module doc)."""
    if len(subnets) < 3:
        raise ValueError(f"a ranking study needs at least 3 subnets, got {len(subnets)}")
    retrain_seeds = sorted(subnets[0]["standalone"], key=str)
    supernet_seeds = sorted(subnets[0]["supernet_epe"], key=str)
    if len(retrain_seeds) < 2:
        raise ValueError("the noise ceiling needs at least two retrain seeds per subnet")
    for subnet in subnets:
        if sorted(subnet["standalone"], key=str) != retrain_seeds or \
                sorted(subnet["supernet_epe"], key=str) != supernet_seeds:
            raise ValueError(f"subnet {subnet['name']} lacks some retrain or supernet seeds")
    measure = _Measure(resamples, level, seed)
    reference = [subnet_reference(s["standalone"]) for s in subnets]
    by_seed = [[float(s["standalone"][key]["epe"]) for s in subnets] for key in retrain_seeds]
    scores = [[float(s["supernet_epe"][key]) for s in subnets] for key in supernet_seeds]
    depth = [float(s["depth"]) for s in subnets]
    macs = [float(s["macs"]) for s in subnets]
    n_super = len(scores)

    def mean_over_supernets(statistic: Callable[..., float]) -> Callable[..., float]:
        # columns: reference, extra..., then one column per supernet seed
        def combined(ref, *rest):
            extra, supers = rest[:len(rest) - n_super], rest[len(rest) - n_super:]
            return _mean([statistic(score, ref, *extra) for score in supers])
        return combined

    doc: Dict[str, Any] = {"k": len(subnets), "retrain_seeds": [str(k) for k in retrain_seeds],
                           "supernet_seeds": [str(k) for k in supernet_seeds]}
    doc.update(measure("noise_ceiling_tau", _mean_pairwise_tau, *by_seed))
    doc.update(measure("tau", mean_over_supernets(kendall_tau), reference, *scores))
    doc.update(measure("spearman", mean_over_supernets(spearman_rho), reference, *scores))
    doc.update(measure("partial_tau_given_depth", mean_over_supernets(partial_tau), reference, depth, *scores))
    doc.update(measure("partial_tau_given_macs", mean_over_supernets(partial_tau), reference, macs, *scores))
    if n_super >= 2:
        doc.update(measure("supernet_seed_tau", _mean_pairwise_tau, *scores))
    else:
        doc.update({"supernet_seed_tau": None, "supernet_seed_tau" + measure.suffix: [None, None]})
    doc["per_supernet"] = {}
    for key, score in zip(supernet_seeds, scores):
        entry = {}
        entry.update(measure("tau", kendall_tau, score, reference))
        entry.update(measure("partial_tau_given_depth", partial_tau, score, reference, depth))
        entry.update(measure("partial_tau_given_macs", partial_tau, score, reference, macs))
        doc["per_supernet"][str(key)] = entry
    doc["trivial"] = {}
    timed = all(s.get("latency_ms") is not None for s in subnets)
    for name in TRIVIAL + (("latency_ms",) if timed else ()):
        values = [float(s[name]) for s in subnets]
        raw = kendall_tau(values, reference)
        sign = -1 if not math.isnan(raw) and raw < 0 else 1
        signed = [sign * v for v in values]
        entry = {"sign": sign, "meaning": "more is worse" if sign > 0 else "more is better"}
        entry.update(measure("tau", kendall_tau, signed, reference))
        doc["trivial"][name] = entry
    trivial_taus = [entry["tau"] for entry in doc["trivial"].values() if entry["tau"] is not None]
    doc["best_trivial_tau"] = max(trivial_taus) if trivial_taus else None
    doc["best_trivial"] = next((name for name, entry in doc["trivial"].items()
                                if entry["tau"] == doc["best_trivial_tau"]), None)
    distance = [float(hamming(s["code"], EDGEFLOWNET_BASELINE)) for s in subnets]
    doc["hamming_tau"] = {"supernet": _round(mean_over_supernets(kendall_tau)(distance, *scores)),
                          "reference": _round(kendall_tau(distance, reference)),
                          "meaning": "tau of the Hamming distance from the EdgeFlowNet baseline code against the "
                                     "EPE: > 0 = nearer the baseline scores better"}
    stuck = [f"{s['name']}_seed={key}" for s in subnets for key in retrain_seeds if s["standalone"][key].get("stuck")]
    doc["stuck_runs"] = {"count": len(stuck), "of": len(subnets) * len(retrain_seeds), "runs": stuck}
    q, q_df, q_p, w = friedman(by_seed)
    h, df, p = kruskal_wallis([[float(run["epe"]) for run in s["standalone"].values()] for s in subnets])
    doc["architecture_effect"] = {
        "test": "Friedman over the subnets' retrain figures, the retrain seeds as blocks (stuck retrains included)",
        "q": _round(q), "df": q_df, "p": _round(q_p), "kendall_w": _round(w),
        "kruskal_wallis": {"test": "Kruskal-Wallis, every retrain an independent sample", "h": _round(h), "df": df,
                           "p": _round(p)},
        "meaning": f"p < {ARCHITECTURE_EFFECT_P}: the stand-alone EPE depends on the architecture; larger: the "
                   "subnets differ no more than one subnet's seeds do; kendall_w: how alike the seeds order the "
                   "subnets (0 independently, 1 identically)"}
    doc["reference"] = {s["name"]: _round(value) for s, value in zip(subnets, reference)}
    if timed:
        doc["latency"] = measure("tau_macs_latency", kendall_tau, macs, [float(s["latency_ms"]) for s in subnets])
    doc.update(verdict(doc, measure.suffix))
    return doc


def _effect_test(effect: Mapping[str, Any]) -> str:
    """The name of the architecture-effect test a study.json holds (an older one: Kruskal-Wallis alone)."""
    return "Friedman" if "q" in effect else "Kruskal-Wallis"


def verdict(doc: Mapping[str, Any], suffix: str = "_ci95") -> Dict[str, Any]:
    """``verdict``, ``verdict_reason`` and ``targets`` from the statistics (module doc)."""
    ceiling, tau, trivial = doc.get("noise_ceiling_tau"), doc.get("tau"), doc.get("best_trivial_tau")
    above = None if tau is None or trivial is None else round(tau - trivial, 6)
    low = (doc.get("partial_tau_given_depth" + suffix) or [None])[0]
    targets = {
        "tau_above_best_trivial": {"target": TARGET_ABOVE_TRIVIAL, "measured": above, "met": None},
        "partial_tau_given_depth_ci_low_above_0": {"target": 0.0, "measured": low, "met": None},
    }
    if ceiling is None or ceiling < MIN_NOISE_CEILING:
        shown = "undefined" if ceiling is None else f"{ceiling:.3f}"
        reason = (f"noise ceiling (seed-vs-seed tau of the stand-alone retrains) is {shown}, below "
                  f"{MIN_NOISE_CEILING}: the reference ranking is too noisy to judge any score against it; the "
                  "targets are not judged")
        effect = doc.get("architecture_effect") or {}
        p, test = effect.get("p"), _effect_test(effect)
        if p is not None and not math.isnan(p):
            reason += (f"; the retrains' EPE shows no detectable dependence on the architecture ({test} "
                       f"p = {p:.3f}): the subnets differ no more than seeds do" if p >= ARCHITECTURE_EFFECT_P else
                       f"; the retrains' EPE does depend on the architecture ({test} p = {p:.3f}), but one "
                       "retrain's seed noise hides most of it: more seeds per subnet would sharpen the reference")
        return {"verdict": "cannot tell", "verdict_reason": reason, "targets": targets}
    targets["tau_above_best_trivial"]["met"] = None if above is None else above >= TARGET_ABOVE_TRIVIAL
    targets["partial_tau_given_depth_ci_low_above_0"]["met"] = None if low is None else low > 0
    met = [t["met"] for t in targets.values()]
    if all(m is True for m in met):
        return {"verdict": "beats trivial", "verdict_reason": "both targets met", "targets": targets}
    missed = [name for name, t in targets.items() if t["met"] is not True]
    return {"verdict": "does not beat trivial", "verdict_reason": f"missed: {', '.join(missed)}", "targets": targets}


def summary_lines(doc: Mapping[str, Any]) -> List[str]:
    """What ``efnas study`` prints at the end: the figures, the targets and the verdict."""
    suffix = next((key[len("tau"):] for key in doc if key.startswith("tau_ci")), "_ci95")

    def show(entry: Mapping[str, Any], name: str) -> str:
        value, ci = entry.get(name), entry.get(name + suffix) or [None, None]
        text = "n/a" if value is None else f"{value:+.3f}"
        return text + ("" if None in ci else f" [{ci[0]:+.3f}, {ci[1]:+.3f}]")

    stuck = doc.get("stuck_runs", {})
    lines = [f"K={doc['k']} subnets; {len(doc.get('retrain_seeds', []))} retrain seeds each (reference: median of "
             f"the last-epochs mean val EPE); {len(doc.get('supernet_seeds', []))} supernet seed(s) "
             f"({suffix[3:]}% bootstrap intervals)",
             f"  noise ceiling (seed vs seed)   {show(doc, 'noise_ceiling_tau')}",
             f"  tau(supernet, reference)       {show(doc, 'tau')}",
             f"  spearman                       {show(doc, 'spearman')}",
             f"  partial tau given depth        {show(doc, 'partial_tau_given_depth')}",
             f"  partial tau given MACs         {show(doc, 'partial_tau_given_macs')}",
             f"  supernet seed vs seed tau      {show(doc, 'supernet_seed_tau')}"]
    for name, entry in doc.get("trivial", {}).items():
        lines.append(f"  trivial {name:<7} ({entry['meaning']:<13}) {show(entry, 'tau')}")
    lines.append(f"  best trivial tau               {doc.get('best_trivial_tau')}")
    hamming_tau = doc.get("hamming_tau", {})
    lines.append(f"  tau(Hamming from baseline, EPE): supernet {hamming_tau.get('supernet')}, reference "
                 f"{hamming_tau.get('reference')}")
    lines.append(f"  stuck retrains (> 0.95x zero flow): {stuck.get('count')} of {stuck.get('of')}")
    effect = doc.get("architecture_effect")

    def fixed(entry: Mapping[str, Any], name: str, digits: int) -> str:
        return "n/a" if entry.get(name) is None else f"{entry[name]:.{digits}f}"

    if effect and "q" in effect:
        kw = effect.get("kruskal_wallis") or {}
        lines.append(f"  architecture effect on the retrains (Friedman, seeds as blocks): Q {fixed(effect, 'q', 2)}, "
                     f"df {effect.get('df')}, p {fixed(effect, 'p', 3)}, Kendall's W {fixed(effect, 'kendall_w', 3)}")
        lines.append(f"  ... every retrain independent (Kruskal-Wallis): H {fixed(kw, 'h', 2)}, df {kw.get('df')}, "
                     f"p {fixed(kw, 'p', 3)}")
    elif effect:
        lines.append(f"  architecture effect on the retrains (Kruskal-Wallis): H {fixed(effect, 'h', 2)}, "
                     f"df {effect.get('df')}, p {fixed(effect, 'p', 3)}")
    if doc.get("latency"):
        lines.append(f"  tau(MACs, measured latency)    {show(doc['latency'], 'tau_macs_latency')}")
    for name, target in doc.get("targets", {}).items():
        state = {True: "met", False: "MISSED", None: "not judged"}[target["met"]]
        measured = "n/a" if target["measured"] is None else f"{target['measured']:+.3f}"
        lines.append(f"  target {name} (>= {target['target']}): {measured} ({state})")
    lines.append(f"  verdict: {doc.get('verdict')} -- {doc.get('verdict_reason')}")
    return lines

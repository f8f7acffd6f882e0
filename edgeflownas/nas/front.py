"""The search's outputs: ``front.json`` (Pareto fronts with every metric), ``all.jsonl``, ``front.png``, a table.

One owner of the format: ``write_outputs`` writes these files and
``load_front`` / ``pick`` read ``front.json`` back (``efnas retrain --arch
best|rank:N``, ``efnas report``).  Fronts are EPE vs MACs and EPE vs params,
both minimised, and EPE vs latency when the search had a latency table
(``latency_ms``: predicted by the table); ``ranked`` is the front of the
search's ``objective`` (MACs unless ``--objective latency``) ordered by EPE, so
``best`` is its first entry and ``rank:N`` its N-th (``TrainedRun.select`` reads them).  When the search scored
on a subset of the validation batches and re-scored the front on all of
them, ``epe`` is the full-split figure and ``epe_search`` the subset's.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence

from edgeflownas.atomic_io import read_json, write_json_atomic, write_text_atomic
from edgeflownas.errors import SearchError
from edgeflownas.nas.arch_codec import ArchCode, arch_name
from edgeflownas.nas.pareto import hypervolume, pareto_front

FRONT_FILE = "front.json"
ALL_FILE = "all.jsonl"
FIGURE_FILE = "front.png"


# objective -> (front key in front.json, cost entry)
OBJECTIVE_FRONTS = {"macs": ("front_macs", "macs"), "latency": ("front_latency", "latency_ms")}


def entry(code: ArchCode, epe: float, cost: Mapping[str, Any], **extra: Any) -> Dict[str, Any]:
    """One candidate as the outputs list it (with ``latency_ms`` when the costs have it)."""
    listed = {"name": arch_name(code), "arch_code": list(code), "epe": float(epe),
              "macs": int(cost["macs"]), "params": int(cost["params"])}
    if "latency_ms" in cost:
        listed["latency_ms"] = float(cost["latency_ms"])
    return dict(listed, **extra)


def ranked_front(doc: Mapping[str, Any]) -> List[Dict[str, Any]]:
    """The front ``ranked`` orders: EPE vs the search's objective (MACs for searches without one)."""
    return doc[OBJECTIVE_FRONTS[doc.get("objective", "macs")][0]]


def fronts(entries: Sequence[Mapping[str, Any]]) -> Dict[str, List[Dict[str, Any]]]:
    """{'macs': front sorted by MACs, 'params': ..., and 'latency_ms' if every entry has one} (EPE minimised)."""
    result = {}
    keys = ("macs", "params") + (("latency_ms",) if entries and all("latency_ms" in e for e in entries) else ())
    for key in keys:
        indices = pareto_front([(float(e[key]), float(e["epe"])) for e in entries])
        result[key] = [dict(entries[i]) for i in indices]
    return result


def write_outputs(out_dir: Path, header: Mapping[str, Any], scored: Sequence[Mapping[str, Any]],
                  front_macs: Sequence[Mapping[str, Any]], front_params: Sequence[Mapping[str, Any]],
                  marks: Mapping[str, Sequence[Mapping[str, Any]]],
                  front_latency: Optional[Sequence[Mapping[str, Any]]] = None,
                  objective: str = "macs") -> Dict[str, Any]:
    """Write front.json, all.jsonl and front.png; return the front document."""
    reference = (max(e["epe"] for e in scored) * 1.05, max(e["macs"] for e in scored) * 1.05)
    searched = [(_search_epe(e), e["macs"]) for e in front_macs]
    extra: Dict[str, Any] = {"objective": objective}
    if front_latency is not None:
        extra["front_latency"] = list(front_latency)
    cost = OBJECTIVE_FRONTS[objective][1]
    ranked = sorted(front_latency if objective == "latency" else front_macs, key=lambda e: (e["epe"], e[cost]))
    doc = dict(header, scored=len(scored), front_macs=list(front_macs), front_params=list(front_params), **extra,
               ranked=[e["name"] for e in ranked],
               hypervolume_epe_macs={"value": hypervolume(searched, reference),
                                     "reference": {"epe": reference[0], "macs": reference[1]},
                                     "note": "area dominated in (search EPE px, MACs) up to the reference point"},
               marks={label: list(items) for label, items in marks.items()})
    out_dir = Path(out_dir)
    write_text_atomic(out_dir / ALL_FILE, "".join(json.dumps(dict(e, order=i), allow_nan=False) + "\n" for i, e in enumerate(scored)))
    write_json_atomic(out_dir / FRONT_FILE, doc)
    front_figure(scored, front_macs, marks, front_latency).savefig(out_dir / FIGURE_FILE, dpi=110)
    return doc


def _search_epe(e: Mapping[str, Any]) -> float:
    """The EPE a candidate was searched with (a re-scored front entry keeps it as ``epe_search``)."""
    return float(e.get("epe_search", e["epe"]))


def front_figure(scored: Sequence[Mapping[str, Any]], front: Sequence[Mapping[str, Any]],
                 marks: Mapping[str, Sequence[Mapping[str, Any]]],
                 front_latency: Optional[Sequence[Mapping[str, Any]]] = None):
    """EPE vs GMACs (and, with a latency front, EPE vs latency beside it): every scored candidate, the front as a
    staircase, the marked subnets (pool, baseline)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    panels = [("macs", 1e9, "GMACs per image pair (FLOPs = 2 x MACs)", front)]
    if front_latency is not None:
        panels.append(("latency_ms", 1.0, "latency (ms, predicted by the latency table)", front_latency))
    figure = Figure(figsize=(7.5 * len(panels), 5.0), layout="constrained")
    FigureCanvasAgg(figure)
    for index, (key, scale, label, panel_front) in enumerate(panels):
        _front_panel(figure.add_subplot(1, len(panels), index + 1), key, scale, label, scored, panel_front, marks)
    return figure


def _front_panel(axis, key: str, scale: float, xlabel: str, scored: Sequence[Mapping[str, Any]],
                 front: Sequence[Mapping[str, Any]], marks: Mapping[str, Sequence[Mapping[str, Any]]]) -> None:
    """One panel of ``front_figure``: EPE against the cost ``key`` (divided by ``scale``)."""
    axis.scatter([e[key] / scale for e in scored], [e["epe"] for e in scored], s=10, color="0.7",
                 label=f"scored ({len(scored)})")
    ordered = sorted(front, key=lambda e: e[key])
    axis.step([e[key] / scale for e in ordered], [_search_epe(e) for e in ordered], where="post", color="tab:red")
    axis.scatter([e[key] / scale for e in ordered], [_search_epe(e) for e in ordered], s=28, color="tab:red",
                 label=f"Pareto front ({len(ordered)})", zorder=3)
    styles = {"pool": ("tab:blue", "o"), "baseline": ("black", "*")}
    for label, items in marks.items():
        colour, marker = styles.get(label, ("tab:green", "s"))
        items = [e for e in items if key in e]
        axis.scatter([e[key] / scale for e in items], [e["epe"] for e in items], s=60 if marker == "*" else 30,
                     facecolors="none" if marker == "o" else colour, edgecolors=colour, marker=marker,
                     label=label, zorder=4)
    axis.set_xlabel(xlabel)
    axis.set_ylabel("val EPE as searched (training-resolution px)")
    axis.set_title("Search: EPE vs " + ("latency" if key == "latency_ms" else "MACs"))
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8)


def format_table(doc: Mapping[str, Any], limit: int = 10) -> str:
    """The printed top table: the front of the search's objective ordered by EPE (latency shown if known)."""
    by_name = {e["name"]: e for e in ranked_front(doc)}
    latency = "front_latency" in doc
    lines = [f"{'rank':>4}  {'arch':<11} {'EPE':>9} {'GMACs':>8} {'params':>10}" + (f" {'ms':>9}" if latency else "")]
    for rank, name in enumerate(doc["ranked"][:limit], start=1):
        e = by_name[name]
        lines.append(f"{rank:>4}  {name:<11} {e['epe']:>9.4f} {e['macs'] / 1e9:>8.3f} {e['params']:>10,}"
                     + (f" {e['latency_ms']:>9.3f}" if latency else ""))
    return "\n".join(lines)


def load_front(search_dir: Path) -> Dict[str, Any]:
    """``front.json`` of a search directory; SearchError naming it if missing or damaged."""
    return read_json(Path(search_dir) / FRONT_FILE, SearchError, f"run 'efnas search --out {search_dir}' first",
                     "run the search again")


def pick(doc: Mapping[str, Any], selector: str) -> Optional[ArchCode]:
    """The code ``best`` or ``rank:N`` names in a front document (None if ``selector`` is neither)."""
    if selector == "best":
        rank = 1
    elif selector.startswith("rank:") and selector[5:].isdigit():
        rank = int(selector[5:])
    else:
        return None
    ranked = doc["ranked"]
    if not 1 <= rank <= len(ranked):
        raise SearchError(f"{selector}: the front has {len(ranked)} architectures (rank:1 .. rank:{len(ranked)})")
    by_name = {e["name"]: e for e in ranked_front(doc)}
    return tuple(by_name[ranked[rank - 1]]["arch_code"])


def load_scored(search_dir: Path) -> List[Dict[str, Any]]:
    """Every candidate of a search's ``all.jsonl``."""
    path = Path(search_dir) / ALL_FILE
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def searches_of_run(run_dir: Path) -> List[Path]:
    """Search directories inside a run directory (``search*/`` holding a front.json), sorted."""
    return sorted(path.parent for path in Path(run_dir).glob(f"search*/{FRONT_FILE}"))

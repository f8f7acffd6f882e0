"""Does the supernet learn flow that generalises to the val split?  Learning curves against zero flow.

Trains the supernet (strict fairness, the fixed 12-subnet pool evaluated with BN
recalibration every epoch) on ``efnas synth`` data for each chosen setting and
prints per epoch: mean_epe_12, the zero-flow EPE of the SAME validation batches
(``edgeflownas.data.flow_stats``), their ratio and the subnet spread (population
std over the 12).  Ends with one JSON line of the figures.  ``--plot`` draws the
learning curves of every run directory under ``--runs_root`` (including runs of
earlier invocations) to a PNG.

    nice -n 10 .venv/bin/python benchmarks/probe_learnability.py            # the chosen setting
    nice -n 10 .venv/bin/python benchmarks/probe_learnability.py --setting learnable --setting learnable_independent

Settings start from configs/learnable_small.yaml (the chosen one: tied options,
strict fairness from scratch); the data is generated (once, deterministically)
under ``--data_root``.  Seeds x settings with gradient diagnostics, in one
process: benchmarks/probe_fairness.py.  Measured figures: studies/learnability/README.md.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from pathlib import Path
from typing import Any, Dict, List

REPO = Path(__file__).resolve().parent.parent
CONFIG = REPO / "configs" / "learnable_small.yaml"
# name -> data preset, config overrides on top of configs/learnable_small.yaml, and an optional warm-up stage:
# overrides of a first run whose weights the supernet run inherits (checkpoint.resume_experiment_name).
WARMUP = {"train.supernet_mode": "fixed_arch", "checkpoint.resume_experiment_name": None}
SETTINGS: Dict[str, Dict[str, Any]] = {
    # The chosen setting = configs/learnable_small.yaml: tied options, strict fairness from scratch.
    "learnable": {"preset": "learnable", "overrides": {}, "warmup": None},
    # Contrasts: independent options from scratch; the older recipe (a warm-up of the baseline alone, then
    # independent options inheriting it); the FC2-like data.
    "learnable_independent": {"preset": "learnable", "overrides": {"model.option_init": "independent"},
                              "warmup": None},
    "learnable_warmup": {"preset": "learnable", "overrides": {"model.option_init": "independent"},
                         "warmup": WARMUP},
    "chairs": {"preset": "chairs", "overrides": {}, "warmup": None},
}
DATA = {"height": 48, "width": 64, "train": 1000, "val": 200, "seed": 0}


def _parse(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--setting", action="append", choices=sorted(SETTINGS),
                        help="setting to train (repeatable) [default: learnable]")
    parser.add_argument("--data_root", type=Path, default=REPO / "outputs" / "learnability")
    parser.add_argument("--runs_root", type=Path, default=REPO / "outputs" / "learnability" / "probe_runs")
    parser.add_argument("--seed", type=int, default=42, help="experiment.seed of the runs")
    parser.add_argument("--set", dest="extra", action="append", default=[], metavar="KEY=VALUE",
                        help="extra config override for every run (repeatable), e.g. train.num_epochs=4")
    parser.add_argument("--plot", type=Path, help="write the learning curves of every run under --runs_root here")
    parser.add_argument("--plot_only", action="store_true", help="train nothing; only --plot")
    return parser.parse_args(argv)


def _dataset(root: Path, preset: str) -> Path:
    """The preset's synth data set under ``root`` (written once; a complete one is reused)."""
    from edgeflownas.data.synth import write_dataset

    out = root / f"data_{preset}"
    info = out / "synth.json"
    if info.exists():
        recorded = json.loads(info.read_text())
        wanted = dict(DATA, preset=preset)
        if any(recorded.get(key) != value for key, value in wanted.items()):
            sys.exit(f"{out}: holds {recorded}, expected {wanted}; pass another --data_root")
        return out
    write_dataset(out, DATA["train"], DATA["val"], DATA["seed"], DATA["height"], DATA["width"],
                  workers=2, preset=preset)
    return out


def _extra(pairs: List[str]) -> Dict[str, Any]:
    import yaml

    extra = {}
    for pair in pairs:
        key, _, value = pair.partition("=")
        extra[key] = yaml.safe_load(value)
    return extra


def zero_flow_of_run(resolved) -> Dict[str, float]:
    """Zero-flow EPE (and flow summary) of the validation samples the run's evaluator uses.

    The evaluator scores the first ``plan.val_samples_used`` samples of the sorted val split and weighs
    every sample the same, so how they are batched does not change the figure.
    """
    import numpy as np

    from edgeflownas.data.flow_stats import flow_summary
    from edgeflownas.data.loader import open_source
    from edgeflownas.train.plan import make_plan

    cfg = resolved.config
    train, val = open_source(cfg.data, "train"), open_source(cfg.data, "val")
    used = make_plan(cfg, len(train), len(val)).val_samples_used
    return flow_summary(val.get_batch(np.arange(start, min(start + 64, used))).flow for start in range(0, used, 64))


def read_history(run_dir: Path) -> List[Dict[str, float]]:
    """The run's eval history rows (numbers only)."""
    with open(run_dir / "eval_epe_history.csv", newline="") as handle:
        return [{k: float(v) for k, v in row.items() if v not in ("", None)} for row in csv.DictReader(handle)]


def _train(resolved) -> Any:
    from edgeflownas.train.api import run_training

    return run_training(resolved, overwrite=True)


def run_setting(name: str, args) -> Dict[str, Any]:
    """Train one setting (its warm-up first, if any); print its per-epoch curve; return its figures."""
    from edgeflownas.config import load_yaml, resolve_mapping

    setting = SETTINGS[name]
    data = _dataset(args.data_root, setting["preset"])
    common = {"experiment.output_root": str(args.runs_root), "experiment.seed": args.seed,
              "data.train_dir": str(data / "train"), "data.val_dir": str(data / "val")}
    overrides = {"experiment.name": f"{name}_seed{args.seed}", **common, **setting["overrides"], **_extra(args.extra)}
    started = time.time()
    if setting["warmup"] is not None:
        warmup = {**overrides, **setting["warmup"], "experiment.name": f"{name}_seed{args.seed}_warmup"}
        _train(resolve_mapping(load_yaml(CONFIG), warmup))
        overrides["checkpoint.resume_experiment_name"] = warmup["experiment.name"]
    resolved = resolve_mapping(load_yaml(CONFIG), overrides)
    zero = zero_flow_of_run(resolved)
    result = _train(resolved)
    minutes = (time.time() - started) / 60
    rows = read_history(result.run_dir)
    print(f"\n{name}: preset={setting['preset']} warm-up={setting['warmup'] is not None} "
          f"zero_flow_epe={zero['zero_flow_epe']:.4f} mean_flow_epe={zero['mean_flow_epe']:.4f} ({minutes:.1f} min)")
    print(f"{'epoch':>5} {'step':>6} {'train_loss':>10} {'mean_epe_12':>11} {'ratio':>6} {'std_epe_12':>10}")
    for row in rows:
        print(f"{int(row['epoch']):5d} {int(row['global_step']):6d} {row['train_loss_epoch_avg']:10.4f} "
              f"{row['mean_epe_12']:11.4f} {row['mean_epe_12'] / zero['zero_flow_epe']:6.3f} {row['std_epe_12']:10.4f}")
    last = rows[-1]
    return {"setting": name, "preset": setting["preset"], "warmup": setting["warmup"] is not None,
            "run_dir": str(result.run_dir), "minutes": round(minutes, 2), "zero_flow_epe": zero["zero_flow_epe"],
            "mean_flow_epe": zero["mean_flow_epe"], "mean_epe_12": [r["mean_epe_12"] for r in rows],
            "std_epe_12": [r["std_epe_12"] for r in rows], "final_ratio": last["mean_epe_12"] / zero["zero_flow_epe"],
            "best_ratio": min(r["mean_epe_12"] for r in rows) / zero["zero_flow_epe"]}


def plot(runs_root: Path, out: Path) -> None:
    """Learning curves (mean_epe_12 / zero-flow EPE, and std_epe_12) of every run directory under ``runs_root``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from edgeflownas.config import resolve

    fig, (ax_ratio, ax_std) = plt.subplots(1, 2, figsize=(13, 5.5))
    for run_dir in sorted(p for p in runs_root.iterdir() if (p / "eval_epe_history.csv").exists()):
        resolved = resolve(run_dir / "config.yaml")
        if resolved.config.train.supernet_mode != "strict_fairness":
            continue  # a warm-up's pool EPE measures options it never trained
        rows = [r for r in read_history(run_dir) if "mean_epe_12" in r]
        if not rows:
            continue
        zero = zero_flow_of_run(resolved)["zero_flow_epe"]
        steps = [r["global_step"] for r in rows]
        warm = resolved.config.checkpoint.resume_experiment_name
        label = f"{run_dir.name} (after warm-up {warm})" if warm else run_dir.name
        style = dict(marker="o", lw=2.5 if warm else 1.0, ls="-" if warm else "--")
        ax_ratio.plot(steps, [r["mean_epe_12"] / zero for r in rows], label=label, **style)
        ax_std.plot(steps, [r["std_epe_12"] for r in rows], label=label, **style)
    ax_ratio.axhline(1.0, color="grey", lw=1, ls="--")
    ax_ratio.axhline(0.8, color="green", lw=1, ls=":")
    ax_ratio.set(xlabel="strict-fairness cycles (after the warm-up, if any)", ylabel="val mean_epe_12 / zero-flow EPE",
                 title="val EPE of the 12-subnet pool vs zero flow (target <= 0.8)")
    ax_std.set(xlabel="strict-fairness cycles (after the warm-up, if any)", ylabel="std_epe_12 (px)", yscale="log",
               title="subnet spread on val")
    ax_ratio.legend(fontsize=6)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)


def main(argv=None) -> int:
    """Train the chosen settings, print their curves and one JSON line; optionally plot."""
    args = _parse(argv)
    figures = [] if args.plot_only else [run_setting(name, args) for name in args.setting or ["learnable"]]
    if args.plot:
        plot(args.runs_root, args.plot)
    if figures:
        print(json.dumps({"probe_learnability": figures}))
    return 0


if __name__ == "__main__":
    sys.exit(main())

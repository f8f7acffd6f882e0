"""Benchmark of ``efnas search``: quality against the exhaustive front, and cost per candidate.

1. Trains a small supernet on ``efnas synth`` data (tiny resolution) unless --run names one.
2. Restricts the space to 3^k codes (the first 9-k blocks fixed, k=5 by default: 243 codes) and
   scores it exhaustively: the reference Pareto front (EPE vs MACs).
3. Runs evolution and random search with a budget of 20% of that space, for 5 seeds each, into
   the same store (so every candidate's score is the exhaustive pass's: no noise between
   strategies), and reports each front's hypervolume as a fraction of the exhaustive front's.
   Reference point: (worst EPE in the space x 1.05, largest MACs in the space x 1.05).
4. Cost per candidate: seconds per newly scored candidate in the exhaustive search, against the
   wall time of a fresh ``efnas eval`` of one subnet at the same settings (a new process: imports,
   data, graph, restore, recalibration, EPE).

Targets: evolution >= 0.90 of the exhaustive hypervolume and above random at the same budget
(means over the seeds); search cost per candidate <= 0.5x one ``efnas eval``.  The last line is
one JSON object with the measured figures and the targets.

    .venv/bin/python benchmarks/bench_search.py [--run RUN_DIR] [--free_blocks 5] [--seeds 5]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _parse(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, default=None, help="an existing supernet run (default: train one)")
    parser.add_argument("--free_blocks", type=int, default=5, help="blocks left free (space = 3^k codes)")
    parser.add_argument("--budget_fraction", type=float, default=0.2)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=6, help="epochs of the supernet trained when --run is absent")
    parser.add_argument("--keep", type=Path, default=None, help="keep the work directory here")
    return parser.parse_args(argv)


def _train(workdir: Path, epochs: int) -> Path:
    from edgeflownas.config import default_config_path, load_yaml, resolve_mapping
    from edgeflownas.data.synth import write_dataset
    from edgeflownas.train.api import run_training

    write_dataset(workdir / "fc2", train=240, val=32, seed=0, height=96, width=128, workers=os.cpu_count() or 1)
    overrides = {
        "experiment.name": "bench_search", "experiment.output_root": str(workdir / "runs"), "experiment.seed": 1,
        "data.train_dir": str(workdir / "fc2" / "train"), "data.val_dir": str(workdir / "fc2" / "val"),
        "data.input_height": 48, "data.input_width": 64, "model.init_neurons": 8,
        "train.num_epochs": epochs, "train.batch_size": 8, "train.lr": 1e-3, "train.log_every_steps": 1000,
        "eval.bn_recal_batches": 4, "eval.batch_size": 8, "early_stop.min_epochs_before_early_stop": epochs,
    }
    return run_training(resolve_mapping(load_yaml(default_config_path()), overrides)).run_dir


def main(argv=None) -> int:
    """Run the benchmark and print its figures."""
    args = _parse(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from edgeflownas.nas.arch_codec import BLOCK_NAMES
    from edgeflownas.nas.front import load_scored
    from edgeflownas.nas.pareto import hypervolume
    from edgeflownas.search.run import SearchRequest, run_search
    from edgeflownas.search.strategies import StrategySettings

    workdir = Path(tempfile.mkdtemp(prefix="bench_search_")) if args.keep is None else args.keep
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        run_dir = args.run or _train(workdir, args.epochs)
        fixed = tuple(f"{name}=0" for name in BLOCK_NAMES[:9 - args.free_blocks])
        out = workdir / "search"
        started = time.perf_counter()
        exhaustive = run_search(SearchRequest(run_dir, out / "exhaustive", StrategySettings("exhaustive", 1),
                                              fixed=fixed))
        exhaustive_wall = time.perf_counter() - started
        space = load_scored(out / "exhaustive")
        reference = (max(e["epe"] for e in space) * 1.05, max(e["macs"] for e in space) * 1.05)

        def volume(entries) -> float:
            return hypervolume([(e["epe"], float(e["macs"])) for e in entries], reference)

        full = volume(space)
        budget = max(1, round(args.budget_fraction * len(space)))
        ratios = {"evolution": [], "random": []}
        for strategy in ratios:
            for seed in range(args.seeds):
                target = out / f"{strategy}_{seed}"
                shutil.copytree(out / "exhaustive" / "store", target / "store", dirs_exist_ok=True)
                shutil.copy2(out / "exhaustive" / "cost_table.json", target / "cost_table.json")
                run_search(SearchRequest(run_dir, target, StrategySettings(strategy, budget, seed, population=10),
                                         fixed=fixed))
                ratios[strategy].append(volume(load_scored(target)) / full)
                print(f"{strategy:9s} seed {seed}: hypervolume {ratios[strategy][-1]:.4f} of exhaustive")
        per_candidate = exhaustive["seconds_per_candidate"]
        started = time.perf_counter()
        subprocess.run([str(Path(sys.executable).parent / "efnas"), "eval", "--run", str(run_dir),
                        "--arch", "baseline"], check=True, capture_output=True)
        eval_wall = time.perf_counter() - started
    finally:
        if args.keep is None:
            shutil.rmtree(workdir, ignore_errors=True)
    figures = {
        "space_codes": len(space), "budget": budget, "seeds": args.seeds,
        "reference_point": {"epe": reference[0], "macs": reference[1]},
        "hv_ratio_evolution": statistics.mean(ratios["evolution"]),
        "hv_ratio_random": statistics.mean(ratios["random"]),
        "search_seconds_per_candidate": per_candidate, "exhaustive_wall_s": round(exhaustive_wall, 2),
        "eval_one_subnet_wall_s": round(eval_wall, 2),
        "candidate_cost_vs_eval": per_candidate / eval_wall,
    }
    print(f"space {len(space)} codes, budget {budget} ({args.budget_fraction:.0%}), {args.seeds} seeds, reference "
          f"point EPE {reference[0]:.4f} px, {reference[1] / 1e9:.4f} GMACs")
    print(f"hypervolume vs exhaustive: evolution {figures['hv_ratio_evolution']:.4f} (target >= 0.90), "
          f"random {figures['hv_ratio_random']:.4f} (evolution must beat it)")
    print(f"cost per candidate: search {per_candidate:.3f} s, fresh efnas eval of one subnet {eval_wall:.2f} s "
          f"-> {figures['candidate_cost_vs_eval']:.3f}x (target <= 0.5)")
    figures["targets"] = {"hv_ratio_evolution": 0.9, "hv_ratio_evolution_minus_random": 0.0,
                          "candidate_cost_vs_eval": 0.5}
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())

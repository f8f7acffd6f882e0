"""Benchmark of the one cost model: params and MACs of a run's pool, and ``efnas arch describe --run``.

On a copy of a trained run (``--run``; its weights are not touched), each in a fresh process as a user runs it:

1. ``pool costs``: ``TrainedRun.open`` and the params/MACs of every pool subnet (what ``efnas eval --arch pool``
   spends on costs), first with no ``cost_table.json`` in the run (cold: the table is counted once, three graph
   builds) and then with it (warm: read back);
2. ``efnas arch describe --run RUN CODE``, wall time of the whole command, cold and warm likewise;
3. for comparison, counting the pool on one graph per subnet (the former way of ``efnas eval``).

Targets: warm pool costs < 2 s; warm ``arch describe --run`` < 3 s.  The last line is one JSON object.

    .venv/bin/python benchmarks/bench_run_costs.py --run RUN_DIR [--code a000021222]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

POOL_COSTS = """
import sys, time
started = time.perf_counter()
from edgeflownas.train.trained_run import TrainedRun
run = TrainedRun.open(sys.argv[1], "best")
costs = [run.cost(code) for code in run.pool()]
print(time.perf_counter() - started, len(costs))
"""

GRAPH_COSTS = """
import sys, time
started = time.perf_counter()
from edgeflownas.model.cost import subnet_cost
from edgeflownas.train.trained_run import TrainedRun
run = TrainedRun.open(sys.argv[1], "best")
costs = [subnet_cost(code, *run.input_hw, run.config.model) for code in run.pool()]
print(time.perf_counter() - started, len(costs))
"""


def _timed(argv) -> float:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    started = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(map(str, argv))} failed: {done.stderr.strip().splitlines()[-1:]}")
    return wall


def _inner(script: str, run: Path) -> float:
    done = subprocess.run([sys.executable, "-c", script, str(run)], capture_output=True, text=True, check=True,
                          env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    return float(done.stdout.split()[0])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, required=True, help="a trained supernet run (copied, not changed)")
    parser.add_argument("--code", default="a000021222", help="the code arch describe is asked about")
    args = parser.parse_args(argv)
    from edgeflownas.train.trained_run import COST_TABLE_FILE

    efnas = str(Path(sys.executable).parent / "efnas")
    figures = {"load_average": os.getloadavg()[0]}
    with tempfile.TemporaryDirectory(prefix="bench_run_costs_") as scratch:
        run = Path(scratch) / "run"
        shutil.copytree(args.run, run, ignore=shutil.ignore_patterns("tensorboard", "report", "search*"))
        (run / COST_TABLE_FILE).unlink(missing_ok=True)
        figures["pool_costs_cold_s"] = _inner(POOL_COSTS, run)
        figures["pool_costs_warm_s"] = _inner(POOL_COSTS, run)
        (run / COST_TABLE_FILE).unlink()
        describe = [efnas, "arch", "describe", "--run", str(run), args.code]
        figures["arch_describe_run_cold_s"] = _timed(describe)
        figures["arch_describe_run_warm_s"] = _timed(describe)
        figures["pool_costs_one_graph_each_s"] = _inner(GRAPH_COSTS, run)
    figures = {key: round(value, 3) for key, value in figures.items()}
    for key, value in figures.items():
        print(f"{key}: {value}")
    figures["targets"] = {"pool_costs_warm_s": "< 2", "arch_describe_run_warm_s": "< 3"}
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Benchmark of fixed costs: how long the everyday commands take from process start on a tiny run.

Each command runs as its own ``efnas`` process, as a user (or a SLURM array
task, or a study worker) starts it, on a tiny synthetic FC2 set (16 train /
4 val pairs at 48x64) written to a temp directory:

  train   2 epochs x 3 steps at 32x48, init_neurons 8, batch 2, log every step;
          ``train_first_step_s`` is the time from the "start:" log line to the
          first step's line (graph optimisation and the first runs of a cycle),
          ``train_tiny_total_s`` the whole process
  eval    ``efnas eval --arch baseline`` on that run (one subnet: BN recalibration, EPE, outliers, cost)
  export  ``efnas export --format tflite`` of the baseline subnet
  report  ``efnas report`` of the run (flow pictures, pool costs)

Per command: wall seconds and CPU seconds (user + sys of the child process,
``resource.getrusage(RUSAGE_CHILDREN)``), medians over ``--repeats`` rounds.
The machine's load average is printed with every round: wall time is only
comparable at equal load, CPU time much more so.  Ends with one JSON line of
the medians and the targets (seconds, wall, quiet machine).

    .venv/bin/python benchmarks/bench_startup.py [--repeats 3] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import yaml

TARGETS = {"train_first_step_s": 3.0, "train_tiny_total_s": 15.0, "eval_one_subnet_s": 10.0,
           "export_tflite_s": 15.0, "report_s": 10.0}
TINY = {
    "experiment": {"name": "bench_startup", "seed": 5},
    "data": {"input_height": 32, "input_width": 48, "num_workers": 1, "prefetch_batches": 2},
    "model": {"init_neurons": 8},
    "train": {"num_epochs": 2, "batch_size": 2, "steps_per_epoch": 3, "lr": 0.001, "log_every_steps": 1},
    "eval": {"bn_recal_batches": 2},
    "early_stop": {"min_epochs_before_early_stop": 0},
}
START_LINE = " INFO start: "
FIRST_STEP_LINE = " INFO epoch 1 step 1/"


def _parse(argv: Optional[Sequence[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="rounds; each runs every command once")
    parser.add_argument("--keep", type=Path, default=None, help="work in this (new) directory and keep it")
    return parser.parse_args(argv)


def efnas_command() -> List[str]:
    """``efnas`` of the interpreter running this script (its venv), as a module call."""
    return [sys.executable, "-c", "from edgeflownas.cli import main; main()"]


def load() -> str:
    """The 1-minute load average, as ``uptime`` shows it."""
    return f"{os.getloadavg()[0]:.2f}"


def run(args: Sequence[str], marks: Sequence[str] = ()) -> Tuple[float, float, Dict[str, float]]:
    """(wall s, CPU s, {mark: wall s when an output line containing it appeared}) of one process; exits on failure."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    process = subprocess.Popen(efnas_command() + list(args), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONUNBUFFERED="1"))
    seen: Dict[str, float] = {}
    lines = []
    for line in process.stdout:
        lines.append(line)
        for mark in marks:
            if mark not in seen and mark in line:
                seen[mark] = time.perf_counter() - start
    code = process.wait()
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if code != 0:
        sys.exit(f"efnas {' '.join(args)} failed with exit {code}:\n{''.join(lines[-20:])}")
    missing = [mark for mark in marks if mark not in seen]
    if missing:
        sys.exit(f"efnas {' '.join(args)}: no log line with {missing}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, seen


def prepare(workdir: Path) -> Path:
    """Write the tiny FC2 set and the train config; the config's path."""
    fc2 = workdir / "FC2"
    run(["synth", "--out", str(fc2), "--train_samples", "16", "--val_samples", "4", "--seed", "1",
         "--height", "48", "--width", "64"])
    config = dict(TINY, experiment=dict(TINY["experiment"], output_root=str(workdir / "runs")),
                  data=dict(TINY["data"], train_dir=str(fc2 / "train"), val_dir=str(fc2 / "val")))
    path = workdir / "tiny.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def one_round(workdir: Path, config: Path, index: int) -> Dict[str, Tuple[float, float]]:
    """{figure: (wall, cpu)} of one train, eval, export and report."""
    run_dir = workdir / "runs" / TINY["experiment"]["name"]
    if run_dir.exists():
        shutil.rmtree(run_dir)
    wall, cpu, seen = run(["train", "--config", str(config)], (START_LINE, FIRST_STEP_LINE))
    figures = {"train_tiny_total_s": (wall, cpu),
               "train_first_step_s": (seen[FIRST_STEP_LINE] - seen[START_LINE], float("nan")),
               "train_until_start_s": (seen[START_LINE], float("nan"))}
    figures["eval_one_subnet_s"] = run(["eval", "--run", str(run_dir), "--arch", "baseline"])[:2]
    out = workdir / f"export{index}"
    figures["export_tflite_s"] = run(["export", "--run", str(run_dir), "--arch", "baseline", "--out", str(out),
                                      "--format", "tflite"])[:2]
    figures["report_s"] = run(["report", "--run", str(run_dir), "--out", str(workdir / f"report{index}")])[:2]
    return figures


def main(argv: Optional[Sequence[str]] = None) -> None:
    """Run the rounds, print every figure and one JSON line of medians and targets."""
    args = _parse(argv)
    if args.keep is not None:
        args.keep.mkdir(parents=True)
    with tempfile.TemporaryDirectory(prefix="bench_startup_") as temp:
        workdir = args.keep if args.keep is not None else Path(temp)
        config = prepare(workdir)
        rounds = []
        for index in range(args.repeats):
            load_before = load()
            figures = one_round(workdir, config, index)
            rounds.append(figures)
            cells = "  ".join(f"{name} {wall:.2f}" + ("" if cpu != cpu else f" (cpu {cpu:.2f})")
                              for name, (wall, cpu) in figures.items())
            print(f"round {index + 1}/{args.repeats} load {load_before} -> {load()}: {cells}", flush=True)
    medians = {name: round(statistics.median(r[name][0] for r in rounds), 2) for name in rounds[0]}
    cpu = {f"{name}_cpu": round(statistics.median(r[name][1] for r in rounds), 2) for name in rounds[0]
           if rounds[0][name][1] == rounds[0][name][1]}
    for name, target in TARGETS.items():
        verdict = "met" if medians[name] <= target else "missed"
        print(f"{name:22s} median {medians[name]:7.2f} s  target <= {target:5.1f} s  {verdict}")
    print(json.dumps({**medians, **cpu, "load_end": float(load()), "repeats": args.repeats,
                      "targets": TARGETS}))


if __name__ == "__main__":
    main()

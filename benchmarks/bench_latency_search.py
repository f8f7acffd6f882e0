"""Benchmark: a search on latency, its front re-measured on exported models against the table's stated error.

1. Trains a tiny supernet on ``efnas synth`` data unless --run names a run.
2. ``efnas latency`` for the run (1 thread, float and int8): the table and its stated error per precision.
3. ``efnas search --objective latency --latency_table T`` (exhaustive over the 3^k codes with the first 9-k
   blocks fixed; k=4 by default), once per precision.
4. Exports every subnet of each latency front with ``efnas export`` (the real exported TFLite files: BN
   folded, the run's weights; int8 calibrated on the run's data) and times them as the table's probes were
   timed (``time_models``: interleaved rounds of warm runs, median).
5. Reports per front subnet predicted vs re-measured latency, and whether each is within the table's stated
   error.  The machine may be shared: ``uptime`` is printed with the figures.  The last line is one JSON object.

    .venv/bin/python benchmarks/bench_latency_search.py [--run RUN] [--free_blocks 4] [--runs 30]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path


def _parse(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, default=None, help="an existing supernet run (default: train a tiny one)")
    parser.add_argument("--free_blocks", type=int, default=4)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--keep", type=Path, default=None)
    return parser.parse_args(argv)


def _uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def _train(work: Path) -> Path:
    from edgeflownas.config import default_config_path, load_yaml, resolve_mapping
    from edgeflownas.data.synth import write_dataset
    from edgeflownas.train.api import run_training

    write_dataset(work / "fc2", train=16, val=4, seed=1, height=48, width=64)
    overrides = {"experiment.name": "bench_latency_search", "experiment.output_root": str(work / "runs"),
                 "experiment.seed": 5, "data.train_dir": str(work / "fc2" / "train"),
                 "data.val_dir": str(work / "fc2" / "val"), "data.input_height": 32, "data.input_width": 48,
                 "model.init_neurons": 8, "train.num_epochs": 2, "train.batch_size": 2, "train.steps_per_epoch": 2,
                 "train.log_every_steps": 1000, "eval.bn_recal_batches": 2,
                 "early_stop.min_epochs_before_early_stop": 0}
    return run_training(resolve_mapping(load_yaml(default_config_path()), overrides)).run_dir


def main(argv=None) -> dict:
    args = _parse(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from edgeflownas.export.api import export_run
    from edgeflownas.export.manifest import FORMAT_FILES
    from edgeflownas.latency.api import latency_for_run
    from edgeflownas.latency.measure import time_models
    from edgeflownas.latency.table import PRECISION_FORMATS, read_table
    from edgeflownas.nas.arch_codec import BLOCK_NAMES
    from edgeflownas.search.run import SearchRequest, run_search
    from edgeflownas.search.strategies import StrategySettings

    with tempfile.TemporaryDirectory(prefix="bench_latency_search_") as scratch:
        work = args.keep or Path(scratch)
        work.mkdir(parents=True, exist_ok=True)
        run = args.run or _train(work)
        print(f"latency table of {run}: {_uptime()}", flush=True)
        latency_for_run(run, work / "table.json", None, [1], ("float", "int8"), args.runs, args.warmup)
        table = read_table(work / "table.json")
        fixed = tuple(f"{name}=0" for name in BLOCK_NAMES[:len(BLOCK_NAMES) - args.free_blocks])
        results, rows = {}, []
        for precision in ("float", "int8"):
            request = SearchRequest(run, work / f"search_{precision}",
                                    StrategySettings("exhaustive", population=27, objective="latency"), fixed=fixed,
                                    latency_table=work / "table.json", latency_precision=precision)
            front = run_search(request)["front_latency"]
            paths = {}
            for e in front:
                out = work / f"export_{precision}" / e["name"]
                if not out.exists():
                    export_run(run, e["name"], out, (PRECISION_FORMATS[precision],))
                paths[e["name"]] = out / FORMAT_FILES[PRECISION_FORMATS[precision]]
            print(f"re-measuring {len(front)} exported {precision} front subnets: {_uptime()}", flush=True)
            timed = time_models(paths, 1, args.runs, args.warmup)
            stated = table.stated_error_pct(precision, 1)
            errors = []
            for e in front:
                measured = timed[e["name"]]["median_ms"]
                error = 100 * (e["latency_ms"] - measured) / measured
                errors.append(error)
                rows.append({"precision": precision, "name": e["name"], "predicted_ms": e["latency_ms"],
                             "measured_ms": round(measured, 4), "error_pct": round(error, 2)})
                print(f"  {precision:<5} {e['name']}  EPE {e['epe']:.4f}  predicted {e['latency_ms']:.3f} ms  "
                      f"exported, measured {measured:.3f} ms  error {error:+.1f} % (stated {stated:.0f} %)", flush=True)
            terms = table.entry(precision, 1)["stated_error_terms"]
            results[precision] = {"front": len(front), "stated_error_pct": stated,
                                  "stated_error_terms": {key: value if key.endswith("_at") else round(value, 2)
                                                         for key, value in terms.items()},
                                  "max_abs_error_pct": round(max(abs(x) for x in errors), 2),
                                  "within_stated": sum(abs(x) <= stated for x in errors)}
        print(f"done: {_uptime()}", flush=True)
    summary = {"run_input_hw": list(table.input_hw), "results": results,
               "all_within_stated_error": all(r["within_stated"] == r["front"] for r in results.values()),
               "load_average": [round(v, 2) for v in os.getloadavg()],
               "targets": {"within_stated_error": "every front subnet"}}
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    main()

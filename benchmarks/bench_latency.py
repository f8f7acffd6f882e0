"""Benchmark of the latency table: does reference + sum of block deltas predict whole-model TFLite latency?

1. Builds the probe models of ``efnas latency`` (reference subnet, each block at each other option,
   6 check subnets) at the default config's input size and width (or --height/--width/--init_neurons),
   float32 and full-integer int8, with random weights (latency does not depend on them).
2. Measures the table on this machine (``measure_probes``: interleaved rounds of warm runs, median; the check
   subnets and the reference timed again for the stated error).
3. Builds >= 20 random subnets (seeded, none of them a probe), the run's evaluation pool (seed of the
   default config) and EdgeFlowNet's baseline as the same TFLite files, and times them the same way.
4. Reports, per precision: MAPE and max error of predicted vs measured, the mean signed error (the
   table's constant is the measured reference model, never fitted to these subnets), Kendall tau of
   predicted vs measured, and tau(MACs, measured latency) -- how far MACs mislead on this device.

The machine may be shared: ``uptime`` is printed before and after each measurement, every figure is a
median, and the figures are reported whether or not they meet the target.  Target (this machine,
1 thread): MAPE <= 10 % for float and int8.  The last line is one JSON object.

    .venv/bin/python benchmarks/bench_latency.py [--subnets 20] [--runs 30] [--threads 1] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

TARGET_MAPE_PCT = 10.0


def _parse(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subnets", type=int, default=20, help="random subnets besides the pool and the baseline")
    parser.add_argument("--runs", type=int, default=30, help="timed runs per model")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--height", type=int, default=None)
    parser.add_argument("--width", type=int, default=None)
    parser.add_argument("--init_neurons", type=int, default=None)
    parser.add_argument("--precision", default="float,int8")
    parser.add_argument("--keep", type=Path, default=None,
                        help="keep the models and the table here (models already there are reused: same settings)")
    return parser.parse_args(argv)


def _uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def _validation_codes(count: int, seed: int, exclude) -> list:
    from edgeflownas.nas.arch_codec import EDGEFLOWNET_BASELINE
    from edgeflownas.nas.eval_pool import build_pool

    rng = np.random.default_rng([0xBE4C, count])
    codes, seen = [], set(exclude)
    while len(codes) < count:
        code = tuple(int(v) for v in rng.integers(0, 3, 9))
        if code not in seen:
            seen.add(code)
            codes.append(("random", code))
    for code in list(build_pool(seed)) + [EDGEFLOWNET_BASELINE]:
        if code not in seen:
            seen.add(code)
            codes.append(("baseline" if code == EDGEFLOWNET_BASELINE else "pool", code))
    return codes


def main(argv=None) -> dict:
    args = _parse(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from edgeflownas.config import resolve
    from edgeflownas.latency.api import measure_probes, parse_list
    from edgeflownas.latency.measure import time_models
    from edgeflownas.latency.probes import random_values, write_probes, write_tflite
    from edgeflownas.latency.table import PRECISIONS, LatencyTable, probe_codes, validation
    from edgeflownas.model.cost import subnet_cost
    from edgeflownas.nas.arch_codec import arch_name

    overrides = {key: value for key, value in (("data.input_height", args.height), ("data.input_width", args.width),
                                               ("model.init_neurons", args.init_neurons)) if value is not None}
    config = resolve(None, overrides).config
    height, width, model_cfg = config.data.input_height, config.data.input_width, config.model
    precisions = parse_list(args.precision, "--precision", PRECISIONS)
    print(f"model: {height}x{width}, init_neurons {model_cfg.init_neurons}, {args.threads} thread(s), "
          f"{args.runs} runs after {args.warmup} warm-up", flush=True)
    with tempfile.TemporaryDirectory(prefix="bench_latency_") as scratch:
        work = args.keep or Path(scratch)
        work.mkdir(parents=True, exist_ok=True)
        print(f"building probes: {_uptime()}", flush=True)
        if not (work / "probes").exists():  # --keep DIR of an earlier run with the same settings: its models
            write_probes(work / "probes", model_cfg, height, width, precisions)
        codes = _validation_codes(args.subnets, config.experiment.seed, [code for _, code in probe_codes()])
        values = random_values(model_cfg, height, width)
        (work / "subnets").mkdir(exist_ok=True)
        for index, (_, code) in enumerate(codes):
            for precision in precisions:
                path = work / "subnets" / f"{arch_name(code)}_{precision}.tflite"
                if not path.exists():
                    write_tflite(path, precision, model_cfg, code, values, height, width, work / "subnets", index)
        macs = {code: subnet_cost(code, height, width, model_cfg).macs for _, code in codes}
        print(f"measuring the table: {_uptime()}", flush=True)
        table = LatencyTable(measure_probes(work / "probes", [args.threads], precisions, args.runs, args.warmup))
        (work / "table.json").write_text(json.dumps(table.doc, indent=1))
        results = {}
        for precision in precisions:
            print(f"measuring {len(codes)} subnets ({precision}): {_uptime()}", flush=True)
            paths = {arch_name(code): work / "subnets" / f"{arch_name(code)}_{precision}.tflite" for _, code in codes}
            timed = time_models(paths, args.threads, args.runs, args.warmup)
            predicted = [table.predict_ms(code, precision, args.threads) for _, code in codes]
            measured = [timed[arch_name(code)]["median_ms"] for _, code in codes]
            for (role, code), pred, meas in zip(codes, predicted, measured):
                print(f"  {precision:<5} {arch_name(code)} {role:<8} MACs {macs[code] / 1e6:8.1f} M  predicted "
                      f"{pred:8.3f} ms  measured {meas:8.3f} ms  error {100 * (pred - meas) / meas:+6.1f} %")
            results[precision] = validation(predicted, measured, [macs[code] for _, code in codes])
            results[precision]["stated_error_pct"] = table.stated_error_pct(precision, args.threads)
            results[precision]["reference_ms"] = table.entry(precision, args.threads)["reference_ms"]
            print(f"  {precision}: {json.dumps(results[precision])}", flush=True)
        print(f"done: {_uptime()}", flush=True)
    summary = {
        "input_hw": [height, width], "init_neurons": model_cfg.init_neurons, "threads": args.threads,
        "runtime": table.doc["device"]["runtime"] + " " + table.doc["device"]["runtime_version"],
        "subnets": len(codes),
        "mape_float": round(results["float"]["mape_pct"], 2) if "float" in results else None,
        "mape_int8": round(results["int8"]["mape_pct"], 2) if "int8" in results else None,
        "bias_float": round(results["float"]["bias_pct"], 2) if "float" in results else None,
        "bias_int8": round(results["int8"]["bias_pct"], 2) if "int8" in results else None,
        "tau_predicted_float": round(results["float"]["tau_predicted"], 3) if "float" in results else None,
        "tau_macs_latency": round(results[precisions[0]]["tau_macs_latency"], 3),
        "tau_macs_latency_int8": round(results["int8"]["tau_macs_latency"], 3) if "int8" in results else None,
        "load_average": table.doc["measurement"]["load_average_start"],
        "targets": {"mape_float_max": TARGET_MAPE_PCT, "mape_int8_max": TARGET_MAPE_PCT},
    }
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    main()

"""Time TFLite models the way TFLite's ``benchmark_model`` does: warm-up, many timed ``invoke`` calls, median.

Only the interpreter's ``invoke`` is timed (inputs are set once, outputs never
read), as ``benchmark_model`` does.  Several models are timed in interleaved
rounds so that a change in the machine's load during the measurement falls on
all of them alike: their differences, which the latency table is made of, stay
fair on a loaded machine.  In each round every model runs once untimed and then
``ROUND_RUNS`` times timed, back to back: what is timed is a model whose weights
and activations are in the caches, as when it runs frame after frame on a device
(and in ``benchmark_model``), whatever other models share the session.  Timed
right after the other models instead, a small model pays for reloading the
caches they evicted, and how much depends on how many models were timed with
it: a table's probes and the subnets it predicts would be timed under different
conditions (docs/performance.md, bench_latency_search).
"""

from __future__ import annotations

import os
import platform
import time
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence

import numpy as np

from edgeflownas.export.runtime import load_interpreter, runtime_version
from edgeflownas.quiet import quiet

DEFAULT_RUNS = 50
DEFAULT_WARMUP = 5
# Timed runs of one model in a row per round, after one untimed run that brings it back into the caches.
ROUND_RUNS = 5
ORDER = (f"interleaved rounds: in each round every model runs once untimed, then up to {ROUND_RUNS} timed runs "
         "back to back")


def _ready_interpreter(path: Path, threads: int, seed: int):
    """An interpreter of ``path`` with every input set once to seeded random data of its dtype."""
    interpreter = load_interpreter(path, threads)
    interpreter.allocate_tensors()
    rng = np.random.default_rng(seed)
    for detail in interpreter.get_input_details():
        dtype = np.dtype(detail["dtype"])
        if dtype.kind in "iu":
            info = np.iinfo(dtype)
            value = rng.integers(info.min, int(info.max) + 1, detail["shape"], dtype=dtype)
        else:
            value = rng.uniform(0, 255, detail["shape"]).astype(dtype)
        interpreter.set_tensor(detail["index"], value)
    return interpreter


def summary(times_ms: Sequence[float]) -> Dict[str, float]:
    """Median, 10th/90th percentiles, mean, standard deviation, min and count of run times (ms)."""
    values = np.asarray(times_ms, np.float64)
    return {"median_ms": float(np.median(values)), "p10_ms": float(np.percentile(values, 10)),
            "p90_ms": float(np.percentile(values, 90)), "mean_ms": float(values.mean()),
            "std_ms": float(values.std()), "min_ms": float(values.min()), "runs": int(values.size)}


def time_models(paths: Mapping[str, Path], threads: int, runs: int = DEFAULT_RUNS, warmup: int = DEFAULT_WARMUP,
                copies: Optional[Mapping[str, int]] = None) -> Dict[str, Dict[str, float]]:
    """name -> ``summary`` of ``runs`` timed invocations of each model, ``warmup`` untimed first, in the
    interleaved rounds ``ORDER`` describes; a model named in ``copies`` is loaded into that many interpreters,
    each timed as a model of its own, and its summary pools all their runs."""
    if runs < 1 or warmup < 0:
        raise ValueError(f"runs must be >= 1 and warmup >= 0, got runs={runs}, warmup={warmup}")
    copies = copies or {}
    instances = [(name, path) for name, path in paths.items() for _ in range(copies.get(name, 1))]
    with quiet():  # the runtime's one-time notices (the XNNPACK delegate's creation), not the timed runs
        interpreters = [(name, _ready_interpreter(path, threads, index))
                        for index, (name, path) in enumerate(instances)]
        for _ in range(warmup):
            for _, interpreter in interpreters:
                interpreter.invoke()
    times: Dict[str, List[float]] = {name: [] for name in paths}
    for done in range(0, runs, ROUND_RUNS):
        for name, interpreter in interpreters:
            interpreter.invoke()  # untimed: reloads the caches the other models' runs evicted
            for _ in range(min(ROUND_RUNS, runs - done)):
                start = time.perf_counter()
                interpreter.invoke()
                times[name].append((time.perf_counter() - start) * 1000.0)
    return {name: summary(values) for name, values in times.items()}


def device_description() -> Dict[str, object]:
    """What the measurements ran on: CPU model, cores, OS, Python, the TFLite runtime and its version."""
    name, version = runtime_version()
    return {"machine": platform.machine(), "cpu": _cpu_model(), "cpus": os.cpu_count(),
            "system": platform.platform(), "python": platform.python_version(),
            "runtime": name, "runtime_version": version}


def load_average() -> List[float]:
    """The 1, 5 and 15 minute load averages (what ``uptime`` prints); empty where the OS has none."""
    try:
        return [round(value, 2) for value in os.getloadavg()]
    except OSError:
        return []


def _cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (Linux), else what ``platform`` knows."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text(encoding="utf-8", errors="replace").splitlines():
            if line.split(":")[0].strip() in ("model name", "Hardware", "Model"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()

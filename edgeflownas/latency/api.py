"""``efnas latency``: build the probe models of a run and/or measure them into a latency table.

The measuring half (``measure_probes``) imports no TensorFlow: on a device
with only the ``edge`` install it times a probe directory copied there.
"""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any, Callable, Dict, Optional, Sequence

from edgeflownas.atomic_io import scratch_beside
from edgeflownas.errors import ConfigError
from edgeflownas.latency.measure import (DEFAULT_RUNS, DEFAULT_WARMUP, ORDER, ROUND_RUNS, device_description,
                                         load_average, time_models)
from edgeflownas.latency.table import PRECISIONS, REFERENCE_COPIES, build_table, retimed_names, write_table
from edgeflownas.progress import Progress


PROBES_SUFFIX = ".probes"  # --out T.json without --probes_out: the probes are built in .T.json.probes.tmp-<pid>


def parse_list(text: str, option: str, allowed: Optional[Sequence[str]] = None) -> tuple:
    """A comma list option (``--threads 1,2``, ``--precision float,int8``), checked; duplicates dropped."""
    items = [part.strip() for part in str(text).split(",") if part.strip()]
    if allowed is None:
        if not items or not all(item.isdigit() and int(item) >= 1 for item in items):
            raise ConfigError(f"{option} {text!r}: expected a comma list of positive integers, e.g. 1,2")
        return tuple(sorted({int(item) for item in items}))
    unknown = [item for item in items if item not in allowed]
    if unknown or not items:
        raise ConfigError(f"{option} {text!r}: unknown {', '.join(unknown) or '(none given)'}; "
                          f"expected a comma list of {', '.join(allowed)}")
    return tuple(item for item in allowed if item in items)


def check_new_file(path: Path, option: str) -> None:
    """ConfigError if ``path`` exists (a command never overwrites a file it did not create)."""
    if Path(path).exists():
        raise ConfigError(f"{option} {path} exists: choose a new file name (efnas never overwrites it)")


def measure_probes(probe_dir: Path, threads: Sequence[int], precisions: Optional[Sequence[str]] = None,
                   runs: int = DEFAULT_RUNS, warmup: int = DEFAULT_WARMUP,
                   log: Callable[[str], None] = lambda line: None) -> Dict[str, Any]:
    """Time every probe of ``probe_dir`` at each thread count and precision, then the reference and the check
    subnets again in a second session (the stated error's); the latency table document."""
    from edgeflownas.latency.probes import read_probes

    probes = read_probes(probe_dir)
    precisions = tuple(precisions or probes["precisions"])
    missing = [p for p in precisions if p not in probes["precisions"]]
    if missing:
        raise ConfigError(f"{probe_dir} holds no {', '.join(missing)} probes (it has "
                          f"{', '.join(probes['precisions'])}): build them with --precision {','.join(precisions)}")
    load_start = load_average()
    started = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    files = {probe["name"]: probe["files"] for probe in probes["probes"]}
    again, reference_name = retimed_names(probes), probes["probes"][0]["name"]
    timings: Dict[str, Dict[int, Dict]] = {precision: {} for precision in precisions}
    retimings: Dict[str, Dict[int, Dict]] = {precision: {} for precision in precisions}
    sessions = (("probes timed", list(files), timings, {reference_name: REFERENCE_COPIES}),
                ("models re-timed", again, retimings, None))
    for what, names, into, copies in sessions:
        for precision in precisions:
            for count in threads:
                paths = {name: Path(probe_dir) / files[name][precision] for name in names}
                into[precision][count] = time_models(paths, count, runs, warmup, copies)
                reference = into[precision][count][reference_name]["median_ms"]
                log(f"{precision}, {count} thread(s): {len(paths)} {what}, reference {reference:.3f} ms")
    measurement = {"statistic": "median of the timed invoke() calls", "warmup_runs": warmup, "runs": runs,
                   "order": ORDER, "round_runs": ROUND_RUNS, "started_utc": started,
                   "load_average_start": load_start, "load_average_end": load_average(),
                   "probes": len(probes["probes"]), "reference_copies": REFERENCE_COPIES,
                   "retimed": f"the reference and the {len(again) - 1} check subnets, timed again after every "
                              "precision and thread count (new interpreters, only those models)"}
    return build_table(probes, timings, retimings, device_description(), measurement)


def latency_for_run(run_dir: Path, out: Optional[Path], probes_out: Optional[Path], threads: Sequence[int],
                    precisions: Sequence[str] = PRECISIONS, runs: int = DEFAULT_RUNS, warmup: int = DEFAULT_WARMUP,
                    log: Callable[[str], None] = lambda line: None) -> Optional[Dict[str, Any]]:
    """Build the probes of ``run_dir``'s model and input size (into ``probes_out``, else a work folder beside
    ``out`` that is removed afterwards); measure them into the table ``out`` unless ``out`` is None (build only);
    return the table."""
    from edgeflownas.latency.probes import write_probes
    from edgeflownas.train.trained_run import TrainedRun

    if out is None and probes_out is None:
        raise ValueError("latency_for_run needs out (a table to measure into) or probes_out (probes to keep)")
    if out is not None:
        check_new_file(out, "--out")
    run = TrainedRun.open(Path(run_dir))
    (height, width), costs = run.input_hw, run.cost_table(log)
    if probes_out is not None:
        write_probes(Path(probes_out), run.config.model, height, width, precisions, log, costs)
        if out is None:
            return None
        doc = measure_probes(Path(probes_out), threads, precisions, runs, warmup, log)
    else:
        with scratch_beside(Path(out).with_name(Path(out).name + PROBES_SUFFIX)) as scratch:
            write_probes(scratch / "probes", run.config.model, height, width, precisions, log, costs)
            doc = measure_probes(scratch / "probes", threads, precisions, runs, warmup, log)
    doc["source_run"] = str(Path(run_dir).resolve())
    write_table(out, doc)
    return doc


def time_subnets(model_cfg: Any, height: int, width: int, codes: Sequence[Sequence[int]], scratch: Path,
                 threads: int = 1, runs: int = DEFAULT_RUNS, warmup: int = DEFAULT_WARMUP,
                 log: Callable[[str], None] = lambda line: None) -> Dict[str, Dict[str, float]]:
    """Measured float TFLite latency of each whole subnet in ``codes`` (arch name -> ``measure.summary``).

    Every subnet is exported as ``efnas export`` would (random weights: a
    latency does not depend on their values) into the new folder ``scratch``,
    which is removed afterwards, and the models are timed in interleaved rounds.
    """
    import shutil

    from edgeflownas.latency.probes import random_values, write_tflite
    from edgeflownas.nas.arch_codec import arch_name

    scratch = Path(scratch)
    shutil.rmtree(scratch, ignore_errors=True)  # what a killed measurement left
    scratch.mkdir(parents=True)
    try:
        values = random_values(model_cfg, height, width)
        paths = {}
        progress = Progress(len(codes), what="models built")
        for index, code in enumerate(codes):
            paths[arch_name(code)] = scratch / f"{arch_name(code)}.tflite"
            write_tflite(paths[arch_name(code)], "float", model_cfg, code, values, height, width, scratch, index)
            progress.advance()
            log(f"latency: {progress.line()} ({arch_name(code)})")
        return time_models(paths, threads, runs, warmup)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

"""Probe models of a latency table: the whole exported subnets ``table.probe_codes`` names, float and int8.

They are built where TensorFlow is (the training machine) with random
weights (a latency does not depend on the weights' values) and written to one
directory with ``probes.json``; that directory is what a device with only the
``edge`` install measures (``efnas latency --probes DIR``).  The files are the
same TFLite an ``efnas export`` writes for that subnet: ``export.graph``'s
inference graph (BN folded), converted by ``export.tflite``.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable, Dict, Optional, Sequence

import numpy as np

from edgeflownas.atomic_io import (remove_stale_staging, replace_dir_atomic, staging_dir, write_bytes_atomic,
                                  write_json_atomic)
from edgeflownas.errors import ConfigError
from edgeflownas.latency.table import PRECISION_FORMATS, PROBES_KIND, VERSION, model_settings, probe_codes, probe_name
from edgeflownas.export.manifest import sha256_of
from edgeflownas.model.cost import CostTable
from edgeflownas.progress import Progress

PROBES_FILE = "probes.json"
WORK_DIR = ".work"  # inside the staging folder: the SavedModels the probes are converted from
CALIBRATION_PAIRS = 4


def random_values(model_cfg: Any, height: int, width: int, seed: int = 0) -> Dict[str, np.ndarray]:
    """Every supernet variable at its seeded initial value (name without ':0' -> array)."""
    import tensorflow as tf

    from edgeflownas.model.cost import _ANY_LOSS
    from edgeflownas.model.supernet import Supernet
    from edgeflownas.quiet import absorb_first_run_notices

    with tf.Graph().as_default() as graph:
        tf.compat.v1.set_random_seed(seed)
        net = Supernet(model_cfg, _ANY_LOSS, height, width)
        absorb_first_run_notices()
        with tf.compat.v1.Session(graph=graph) as session:
            session.run(tf.compat.v1.global_variables_initializer())
            return {v.name.split(":")[0]: value for v, value in zip(net.variables, session.run(net.variables))}


def write_tflite(path: Path, precision: str, model_cfg: Any, code: Sequence[int], values: Dict[str, np.ndarray],
                 height: int, width: int, scratch: Path, seed: int = 0) -> None:
    """One subnet as TFLite at ``path``: float32, or full-integer int8 calibrated on random image pairs."""
    from edgeflownas.export.graph import write_saved_model
    from edgeflownas.export.tflite import convert_float, convert_int8

    with tempfile.TemporaryDirectory(prefix="graph_", dir=scratch) as graph_dir:
        write_saved_model(Path(graph_dir), model_cfg, tuple(code), values, height, width, precision == "int8")
        if precision == "float":
            write_bytes_atomic(path, convert_float(Path(graph_dir)))
            return
        rng = np.random.default_rng(seed)
        pairs = [tuple(rng.integers(0, 256, (height, width, 3), dtype=np.uint8) for _ in range(2))
                 for _ in range(CALIBRATION_PAIRS)]
        write_bytes_atomic(path, convert_int8(Path(graph_dir), pairs))


def write_probes(out_dir: Path, model_cfg: Any, height: int, width: int, precisions: Sequence[str],
                 log: Callable[[str], None] = lambda line: None, costs: Optional[CostTable] = None) -> Dict[str, Any]:
    """Write every probe model in ``precisions`` and ``probes.json`` into the new directory ``out_dir``.

    ``costs`` gives each probe's MACs (a run's own table, ``TrainedRun.cost_table``); without it the table is
    counted for ``model_cfg`` at ``height`` x ``width``.
    """
    out_dir = Path(out_dir)
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise ConfigError(f"{out_dir} exists and is not an empty directory: choose a new folder for the probes")
    if costs is None:
        costs = CostTable.build(height, width, model_cfg)
    values = random_values(model_cfg, height, width)
    remove_stale_staging(out_dir)
    staging = staging_dir(out_dir)
    try:
        doc = _fill(staging, model_cfg, height, width, precisions, values, costs, log)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)  # nothing half-written is left beside out_dir
        raise
    replace_dir_atomic(staging, out_dir)
    return doc


def _fill(staging: Path, model_cfg: Any, height: int, width: int, precisions: Sequence[str],
          values: Dict[str, np.ndarray], costs: CostTable, log: Callable[[str], None]) -> Dict[str, Any]:
    """Write the probe files and ``probes.json`` into ``staging``; the manifest document."""
    doc: Dict[str, Any] = {"kind": PROBES_KIND, "version": VERSION, "input_hw": [height, width],
                           "model": model_settings(model_cfg), "precisions": list(precisions), "probes": []}
    scratch = staging / WORK_DIR
    scratch.mkdir()
    probes = probe_codes()
    progress = Progress(len(probes), what="probes written")
    for index, (role, code) in enumerate(probes):
        name = probe_name(code)
        entry = {"name": name, "role": role, "arch_code": list(code),
                 "macs": costs.cost(code)["macs"], "files": {}, "sha256": {}}
        for precision in precisions:
            file = f"{name}_{precision}.tflite"
            write_tflite(staging / file, precision, model_cfg, code, values, height, width, scratch, index)
            entry["files"][precision], entry["sha256"][precision] = file, sha256_of(staging / file)
        doc["probes"].append(entry)
        progress.advance()
        log(f"probes: {progress.line()} ({name}, {role})")
    shutil.rmtree(scratch)
    write_json_atomic(staging / PROBES_FILE, doc)
    return doc


def read_probes(probe_dir: Path) -> Dict[str, Any]:
    """``probes.json`` of a probe directory, each file checked against its sha256; ConfigError naming what is wrong."""
    path = Path(probe_dir) / PROBES_FILE
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path} does not exist: --probes must be a directory written by "
                          "efnas latency --run RUN --probes_out DIR") from None
    except ValueError as error:
        raise ConfigError(f"{path} is not valid JSON ({error}): copy the probe directory again") from None
    if doc.get("kind") != PROBES_KIND or doc.get("version") != VERSION:
        raise ConfigError(f"{path} is not a version {VERSION} probe manifest of efnas latency: build the probes again")
    for probe in doc["probes"]:
        for precision, file in probe["files"].items():
            if precision not in PRECISION_FORMATS:
                raise ConfigError(f"{path}: probe {probe['name']} has an unknown precision {precision!r}")
            if not (Path(probe_dir) / file).is_file() or sha256_of(Path(probe_dir) / file) != probe["sha256"][precision]:
                raise ConfigError(f"{Path(probe_dir) / file} is missing or differs from its sha256 in {path}: "
                                  "copy the probe directory again")
    return doc

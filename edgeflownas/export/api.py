"""``efnas export``: one subnet of a run to SavedModel / TFLite float / TFLite int8, each checked and scored.

Every format is run over the run's validation batches (the ones ``efnas eval``
scores on) and compared with the toolkit's own forward pass of the same subnet
(the fixed-arch network, BN in BN_INFER with the exported statistics): the
maximum absolute flow difference and the EPE go into the manifest; TFLite
files also get a latency (median of ``LATENCY_RUNS`` single-threaded runs after
warm-up, on this machine).  The int8 file is calibrated on a fixed draw of the
run's training pairs (any run kind) and must read back as full-integer, else
the export fails; its EPE change over the float model is measured.  The files
are built beside ``--out`` and renamed into place only when all are written and
checked (``export/output.py``).
"""

from __future__ import annotations

import datetime
import os
import platform
import shutil
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from edgeflownas.errors import ConfigError, ExportError
from edgeflownas.export.manifest import FORMAT_FILES, MANIFEST_FILE, read_manifest, sha256_of, size_of, write_manifest
from edgeflownas.export.output import building, check_out_dir
from edgeflownas.export.source import ExportSource, load_source
from edgeflownas.flow_viz import endpoint_error
from edgeflownas.nas.arch_codec import arch_name

__all__ = ["check_model_size", "check_out_dir", "export_run"]

LATENCY_THREADS = 1
# int8 representative set: this many training pairs (all of a smaller split), drawn once from the run's seed.
CALIBRATION_SAMPLES = 64
_CALIBRATION_STREAM = 0xCA1B  # separates this draw from the BN-recalibration batches' draw of the same seed
_CALIBRATION_CHUNK = 8
WORK_DIR = ".work"  # inside the staging folder: the SavedModels the TFLite files are converted from


def check_model_size(height: Optional[int], width: Optional[int]) -> None:
    """ConfigError unless ``--height`` / ``--width`` (when given) are sizes training accepts (the config schema's)."""
    from edgeflownas.config import load_schema

    fields = load_schema()["properties"]["data"]["properties"]
    for option, key, value in (("--height", "input_height", height), ("--width", "input_width", width)):
        rule = fields[key]
        low, high, step = rule["minimum"], rule["maximum"], rule["multipleOf"]
        if value is not None and not (low <= value <= high and value % step == 0):
            raise ConfigError(f"{option} {value}: the model's input size must be a multiple of {step} from {low} "
                              f"to {high} (the sizes training accepts, data.{key})")


def calibration_pairs(source: ExportSource) -> Tuple[List[Tuple[np.ndarray, np.ndarray]], Dict[str, Any]]:
    """The int8 representative set: up to ``CALIBRATION_SAMPLES`` pairs of the run's training split, and its record.

    The draw is a function of the run's seed only, so a supernet and a fixed-arch run calibrate alike.
    """
    from edgeflownas.data.loader import open_source

    seed = int(source.config.experiment.seed)
    train = open_source(source.config.data, "train")
    pairs, ids = [], []
    try:
        count = min(CALIBRATION_SAMPLES, len(train))
        indices = np.sort(np.random.default_rng([_CALIBRATION_STREAM, seed]).choice(len(train), count, replace=False))
        for start in range(0, count, _CALIBRATION_CHUNK):  # a few pairs at a time: their flows are not kept
            batch = train.get_batch(indices[start:start + _CALIBRATION_CHUNK])
            pairs += [(batch.img0[i], batch.img1[i]) for i in range(len(batch.ids))]
            ids += batch.ids
    finally:
        train.close()
    return pairs, {"split": "train", "pairs": count, "of": len(train), "seed": seed, "first_ids": ids[:3]}


def reference_flows(source: ExportSource) -> List[np.ndarray]:
    """The toolkit's forward pass (fixed-arch network, BN_INFER) of the subnet on every validation image."""
    import tensorflow as tf

    from edgeflownas.model.layers import BN_INFER
    from edgeflownas.model.supernet import Supernet

    cfg = source.config
    with tf.Graph().as_default() as graph:
        tf.compat.v1.set_random_seed(0)  # initial values are overwritten; determinism mode wants a seed anyway
        net = Supernet(cfg.model, cfg.loss, cfg.data.input_height, cfg.data.input_width, fixed_arch=source.code)
        assign = [v.assign(source.values[v.name.split(":")[0]]) for v in net.variables
                  if v.name.split(":")[0] in source.values]
        with tf.compat.v1.Session(graph=graph) as session:
            session.run(tf.compat.v1.global_variables_initializer())
            session.run(assign)
            flows = [session.run(net.flow, {net.img0: b.img0, net.img1: b.img1, net.bn_mode: BN_INFER})
                     for b in source.val_batches]
    return [flow for batch_flows in flows for flow in batch_flows]


def val_pairs(source: ExportSource) -> List[Tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """(img0, img1, flow) of every validation image in the evaluator's order."""
    return [(b.img0[i], b.img1[i], b.flow[i]) for b in source.val_batches for i in range(len(b.img0))]


def score(run: Callable, pairs: Sequence, reference: Optional[Sequence[np.ndarray]], height: int,
          width: int) -> Dict[str, float]:
    """EPE (mean over pixels, as the trainer) and max |flow - reference| of one format on the validation images."""
    from edgeflownas.export.model import flow_at_input_size

    total, pixels, worst = 0.0, 0, 0.0
    for index, (img0, img1, gt) in enumerate(pairs):
        flow = flow_at_input_size(run, img0, img1, height, width)
        error = endpoint_error(flow, gt, np.float32)
        total, pixels = total + float(error.sum()), pixels + error.size
        if reference is not None:
            worst = max(worst, float(np.abs(flow - reference[index]).max()))
    # At another size than the training one the toolkit's pass is not the same computation: no difference.
    return {"epe": total / pixels, "max_abs_diff_vs_toolkit_px": worst if reference is not None else None}


def export_run(run_dir: Path, arch: Optional[str], out_dir: Path, formats: Sequence[str], which: str = "best",
               height: Optional[int] = None, width: Optional[int] = None,
               log: Callable[[str], None] = lambda line: None) -> Dict[str, Any]:
    """Export the subnet ``arch`` of ``run_dir`` into ``out_dir`` in ``formats``; return the manifest written.

    ``out_dir`` is checked and locked before anything is loaded; the files are made, scored and checked in a
    staging folder beside it, which becomes ``out_dir`` only when complete (a failed export leaves nothing).
    """
    out_dir = Path(out_dir)
    check_model_size(height, width)
    with building(out_dir, f"efnas export of {Path(run_dir).absolute()}", log) as staging:
        doc = _export_into(staging, run_dir, arch, formats, which, height, width, log)
        _verify_written(staging, doc)
    return doc


def _export_into(staging: Path, run_dir: Path, arch: Optional[str], formats: Sequence[str], which: str,
                 height: Optional[int], width: Optional[int], log: Callable[[str], None]) -> Dict[str, Any]:
    """Write, score and check every format and the manifest into ``staging``; return the manifest."""
    from edgeflownas.export.tflite import INT8_INPUT_TYPE, INT8_OUTPUT_TYPE

    source = load_source(run_dir, arch, which, log)
    cfg = source.config
    height, width = height or cfg.data.input_height, width or cfg.data.input_width
    cost = source.run.cost_table(log, (height, width)).cost(source.code)  # eval's and search's figures
    pairs = val_pairs(source)
    same_size = (height, width) == (cfg.data.input_height, cfg.data.input_width)
    reference = reference_flows(source) if same_size else None
    doc: Dict[str, Any] = {
        "source_run": str(Path(run_dir).resolve()), "checkpoint": str(source.ckpt_dir.resolve()),
        "checkpoint_sha256": source.weights_sha256, "source_kind": source.kind,
        "arch_code": list(source.code), "arch_name": arch_name(source.code),
        "params": cost["params"], "macs": cost["macs"], "input_hw": [height, width],
        "training_hw": [cfg.data.input_height, cfg.data.input_width],
        "io": {"inputs": "img0, img1: uint8 RGB [1,H,W,3] 0..255",
               "outputs": "flow [1,H,W,2] (u,v) in input pixels; uncertainty [1,H,W,2] LinearSoftplus channels",
               "tflite_int8": f"{INT8_INPUT_TYPE} inputs (scale 1, zero point 0), {INT8_OUTPUT_TYPE} outputs "
                              "(scale and zero point in the file); checked after conversion"},
        "val_images": len(pairs), "evaluator_epe": source.evaluator_epe,
        "created_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "formats": {},
    }
    work = staging / WORK_DIR
    for fmt in formats:
        checked = _write_format(fmt, staging, work, source, height, width, log)
        doc["formats"][fmt] = entry = _format_entry(fmt, staging, pairs, reference, height, width)
        log(f"{fmt}: {entry['file']} {entry['size_bytes']:,d} bytes, val EPE {entry['epe']:.4f}")
        if fmt == "tflite_int8":
            entry.update(checked)
            float_epe, float_of = _float_epe(doc, work, pairs, height, width)
            entry["float_epe"], entry["float_epe_of"] = float_epe, float_of
            doc["int8_epe_increase"] = entry["epe"] - float_epe
    if work.exists():
        shutil.rmtree(work)
    write_manifest(staging, doc)
    return doc


def _verify_written(staging: Path, doc: Dict[str, Any]) -> None:
    """ExportError unless the staging folder holds exactly the manifest and files it lists, as recorded."""
    written = read_manifest(staging)
    expected = {MANIFEST_FILE} | {entry["file"] for entry in doc["formats"].values()}
    found = {path.name for path in staging.iterdir()}
    if found != expected:
        raise ExportError(f"{staging} holds {', '.join(sorted(found - expected)) or 'no'} extra and "
                          f"{', '.join(sorted(expected - found)) or 'no'} missing file(s): the export was removed; "
                          "run it again")
    for fmt, entry in written["formats"].items():
        if sha256_of(staging / entry["file"]) != entry["sha256"] or entry != doc["formats"][fmt]:
            raise ExportError(f"{entry['file']} in {staging} does not read back as written (sha256 differs): "
                              "the export was removed; check the disk and run it again")


def _float_epe(doc: Dict[str, Any], work: Path, pairs: Sequence, height: int, width: int) -> Tuple[float, str]:
    """EPE of the float model the int8 file was converted from, and what was scored for it.

    The float TFLite or SavedModel of the same export computes it already; without either, the float graph
    the converter read is scored.
    """
    for fmt in ("tflite", "saved_model"):
        if fmt in doc["formats"]:
            return doc["formats"][fmt]["epe"], fmt
    from edgeflownas.export.graph import SavedModelRunner

    graph = SavedModelRunner(work / "graph_tflite_int8")
    run = lambda img0, img1: graph(img0.astype(np.float32), img1.astype(np.float32))  # noqa: E731
    return score(run, pairs, None, height, width)["epe"], "float graph before conversion"


def _write_format(fmt: str, staging: Path, work: Path, source: ExportSource, height: int, width: int,
                  log: Callable[[str], None]) -> Dict[str, Any]:
    """Write one format's file into ``staging`` (TFLite from a SavedModel made in ``work``); the int8 check."""
    from edgeflownas.atomic_io import write_bytes_atomic
    from edgeflownas.export.graph import write_saved_model
    from edgeflownas.export.tflite import check_full_integer, convert_float, convert_int8

    model_cfg, target = source.config.model, staging / FORMAT_FILES[fmt]
    if fmt == "saved_model":
        write_saved_model(target, model_cfg, source.code, source.values, height, width)
        return {}
    graph_dir = work / f"graph_{fmt}"
    write_saved_model(graph_dir, model_cfg, source.code, source.values, height, width, fmt == "tflite_int8")
    if fmt == "tflite":
        write_bytes_atomic(target, convert_float(graph_dir))
        return {}
    calibration, record = calibration_pairs(source)
    log(f"tflite_int8: calibrating on {record['pairs']} training pair(s) of {record['of']}")
    model = convert_int8(graph_dir, _resized(calibration, height, width))
    summary = check_full_integer(model, FORMAT_FILES[fmt])
    write_bytes_atomic(target, model)
    return {"calibration": record, "integer_check": summary}


def _format_entry(fmt: str, staging: Path, pairs: Sequence, reference: Optional[Sequence[np.ndarray]],
                  height: int, width: int) -> Dict[str, Any]:
    """Manifest entry of one written format: file, size, sha256, EPE, difference and (TFLite) latency."""
    from edgeflownas.export.model import open_runner
    from edgeflownas.export.tflite import LATENCY_RUNS, LATENCY_WARMUP

    target = staging / FORMAT_FILES[fmt]
    run = open_runner(staging, fmt, LATENCY_THREADS)
    entry = {"file": FORMAT_FILES[fmt], "size_bytes": size_of(target), "sha256": sha256_of(target)}
    entry.update(score(run, pairs, reference, height, width))
    if fmt != "saved_model":
        entry["latency_ms"] = run.latency_ms(*_resized(pairs[:1], height, width)[0])
        entry["latency"] = {"runs": LATENCY_RUNS, "warmup_runs": LATENCY_WARMUP, "statistic": "median",
                            "threads": LATENCY_THREADS, "machine": f"{platform.machine()} {os.cpu_count()} cpus"}
    return entry


def _resized(pairs: Sequence, height: int, width: int) -> List[Tuple[np.ndarray, np.ndarray]]:
    """Image pairs at the model's size (unchanged when they already have it)."""
    import cv2

    return [tuple(img if img.shape[:2] == (height, width) else
                  cv2.resize(img, (width, height), interpolation=cv2.INTER_LINEAR) for img in pair[:2])
            for pair in pairs]

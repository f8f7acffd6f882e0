"""``efnas export``: one subnet of a run to SavedModel / TFLite float / TFLite int8, each checked and scored.

Every format is run over the run's validation batches (the ones ``efnas eval``
scores on) and compared with the toolkit's own forward pass of the same subnet
(the fixed-arch network, BN in BN_INFER with the exported statistics): the
maximum absolute flow difference and the EPE go into the manifest; TFLite
files also get a latency (median of ``LATENCY_RUNS`` single-threaded runs after
warm-up, on this machine).
"""

from __future__ import annotations

import datetime
import os
import platform
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from edgeflownas.errors import ConfigError
from edgeflownas.export.manifest import FORMAT_FILES, sha256_of, size_of, write_manifest
from edgeflownas.export.source import ExportSource, load_source
from edgeflownas.nas.arch_codec import arch_name

LATENCY_THREADS = 1


def check_out_dir(out_dir: Path) -> None:
    """ConfigError if ``out_dir`` exists and is not an empty directory."""
    out_dir = Path(out_dir)
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise ConfigError(f"--out {out_dir} exists and is not an empty directory: choose a new folder "
                          "(an export never overwrites files)")


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
        error = np.sqrt(((flow - gt) ** 2).sum(axis=-1))
        total, pixels = total + float(error.sum()), pixels + error.size
        if reference is not None:
            worst = max(worst, float(np.abs(flow - reference[index]).max()))
    # At another size than the training one the toolkit's pass is not the same computation: no difference.
    return {"epe": total / pixels, "max_abs_diff_vs_toolkit_px": worst if reference is not None else None}


def export_run(run_dir: Path, arch: Optional[str], out_dir: Path, formats: Sequence[str], which: str = "best",
               height: Optional[int] = None, width: Optional[int] = None,
               log: Callable[[str], None] = lambda line: None) -> Dict[str, Any]:
    """Export the subnet ``arch`` of ``run_dir`` into ``out_dir`` in ``formats``; return the manifest written.

    Files are made and scored in a scratch directory and moved into ``out_dir`` at the end (manifest
    last), so a failed export leaves no half-filled folder.
    """
    from edgeflownas.model.cost import subnet_cost
    from edgeflownas.train.checkpoint import weights_sha256

    out_dir = Path(out_dir)
    check_out_dir(out_dir)
    for option, value in (("--height", height), ("--width", width)):
        if value is not None and (value <= 0 or value % 4):
            raise ConfigError(f"{option} {value}: the model's input size must be a positive multiple of 4")
    source = load_source(run_dir, arch, which, log)
    cfg = source.config
    height, width = height or cfg.data.input_height, width or cfg.data.input_width
    cost = subnet_cost(source.code, height, width, cfg.model)
    pairs = val_pairs(source)
    same_size = (height, width) == (cfg.data.input_height, cfg.data.input_width)
    reference = reference_flows(source) if same_size else None
    doc: Dict[str, Any] = {
        "source_run": str(Path(run_dir).resolve()), "checkpoint": str(source.ckpt_dir.resolve()),
        "checkpoint_sha256": weights_sha256(source.ckpt_dir), "source_kind": source.kind,
        "arch_code": list(source.code), "arch_name": arch_name(source.code),
        "params": cost.params, "macs": cost.macs, "input_hw": [height, width],
        "training_hw": [cfg.data.input_height, cfg.data.input_width],
        "io": {"inputs": "img0, img1: uint8 RGB [1,H,W,3] 0..255",
               "outputs": "flow [1,H,W,2] (u,v) in input pixels; uncertainty [1,H,W,2] LinearSoftplus channels"},
        "val_images": len(pairs), "evaluator_epe": source.evaluator_epe,
        "created_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "formats": {},
    }
    with tempfile.TemporaryDirectory(prefix="efnas_export_") as scratch:
        staging = Path(scratch) / "export"
        staging.mkdir()
        for fmt in formats:
            _write_format(fmt, staging, source, height, width)
            doc["formats"][fmt] = entry = _format_entry(fmt, staging, pairs, reference, height, width)
            log(f"{fmt}: {entry['file']} {entry['size_bytes']:,d} bytes, val EPE {entry['epe']:.4f}")
        if "tflite" in doc["formats"] and "tflite_int8" in doc["formats"]:
            doc["int8_epe_increase"] = doc["formats"]["tflite_int8"]["epe"] - doc["formats"]["tflite"]["epe"]
        out_dir.mkdir(parents=True, exist_ok=True)
        for fmt in formats:
            shutil.move(str(staging / FORMAT_FILES[fmt]), str(out_dir / FORMAT_FILES[fmt]))
    write_manifest(out_dir, doc)
    return doc


def _write_format(fmt: str, staging: Path, source: ExportSource, height: int, width: int) -> None:
    """Write one format's file into ``staging`` (TFLite from a SavedModel made beside it)."""
    from edgeflownas.export.graph import write_saved_model
    from edgeflownas.export.tflite import convert_float, convert_int8

    model_cfg, target = source.config.model, staging / FORMAT_FILES[fmt]
    if fmt == "saved_model":
        write_saved_model(target, model_cfg, source.code, source.values, height, width)
        return
    graph_dir = staging.parent / f"graph_{fmt}"
    write_saved_model(graph_dir, model_cfg, source.code, source.values, height, width, fmt == "tflite_int8")
    if fmt == "tflite":
        target.write_bytes(convert_float(graph_dir))
        return
    recal = [(b.img0[i], b.img1[i]) for b in source.recal_batches for i in range(len(b.img0))]
    target.write_bytes(convert_int8(graph_dir, _resized(recal, height, width)))


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

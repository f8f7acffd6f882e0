"""``efnas pack``: FC2 folders -> per-split HDF5 shards + ``manifest.json``, resumable.

The source is scanned first and refused (before anything is written) when a
split is empty or has a bad sample.  Samples are then decoded and resized in
worker processes and written shard by shard by this process.  Each shard is
written to a temp file and renamed into place; only then does the manifest
(itself replaced atomically) list it with its sha256.  Re-running an
interrupted pack with the same arguments re-hashes the shards the manifest
lists, keeps those that match and writes the rest.  The output directory is
locked (``edgeflownas.locks``): a second pack into it is refused at once,
naming the first.  A full disk ends in one "no space left on <out>" line with
the partial shard deleted and only complete shards listed.
"""

from __future__ import annotations

import os
from collections import deque
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from itertools import chain, islice
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, Iterator, List, Optional, Tuple

import numpy as np

from edgeflownas import __version__
from edgeflownas.atomic_io import fsync_dir, write_json_atomic
from edgeflownas.config import load_schema
from edgeflownas.data import pack_output, shards
from edgeflownas.data.check import build_report, check_splits, overlap_problems
from edgeflownas.data.io import read_sample, resize_sample
from edgeflownas.data.scan import SAMPLE_PATTERN, Sample, SplitScan, require_samples
from edgeflownas.errors import ConfigError, DataError
from edgeflownas.data.pack_output import claimed_output, write_error
from edgeflownas.locks import LOCK_NAME

RESOLUTIONS = ("train", "native")
IN_FLIGHT_PER_WORKER = 4  # decoded samples waiting for the writer, per worker (bounds memory)

Arrays = Tuple[np.ndarray, np.ndarray, np.ndarray]


@dataclass(frozen=True)
class ShardPlan:
    """One shard to write: its split, file name and samples (in id order)."""

    split: str
    file: str
    samples: Tuple[Sample, ...]

    @property
    def sample_ids(self) -> List[str]:
        """The ids of the shard's samples, in order."""
        return [sample.sample_id for sample in self.samples]


@dataclass
class PackResult:
    """What a pack run did; ``manifest`` is the final manifest."""

    out: Path
    manifest: Dict[str, Any]
    written: List[str] = field(default_factory=list)
    reused: List[str] = field(default_factory=list)
    redone: List[str] = field(default_factory=list)


def scan_source(src: Path, workers: Optional[int] = None) -> Dict[str, SplitScan]:
    """Quick-scan src/train and src/val; DataError if a split is empty, has a bad sample or shares samples."""
    src = Path(src)
    if not src.is_dir():
        raise DataError(f"{src}: FC2 root does not exist or is not a directory (expected train/ and val/ in it)")
    scans = check_splits({split: src / split for split in shards.SPLITS}, workers=workers)
    for split, scan in scans.items():
        require_samples(scan, split)
        if scan.bad:
            reasons = ", ".join(f"{reason}: {len(items)}" for reason, items in scan.bad_by_reason().items())
            raise DataError(f"{scan.directory}: {len(scan.bad)} bad samples ({reasons}), first: {scan.bad[0].detail}; "
                            f"nothing was packed. Fix them ('efnas data-check --{split}_dir {scan.directory}' "
                            "lists each one)")
    overlap = overlap_problems(scans)
    if overlap:
        raise DataError(f"{overlap[0]}; nothing was packed")
    return scans


def resolution_entry(scans: Dict[str, SplitScan], resolution: str, height: int, width: int) -> Dict[str, Any]:
    """The manifest's ``resolution``: stored size, source size and the resize rule."""
    if resolution not in RESOLUTIONS:
        raise DataError(f"--resolution must be one of {RESOLUTIONS}, got {resolution!r}")
    sizes = {split: scan.image_size for split, scan in scans.items()}
    if len(set(sizes.values())) != 1:
        raise DataError(f"splits have different image sizes {sizes} (HxW); a pack needs one source size")
    source_height, source_width = next(iter(sizes.values()))
    if resolution == "native":
        height, width = source_height, source_width
    return {"mode": resolution, "height": height, "width": width, "source_height": source_height,
            "source_width": source_width,
            "resize": "none" if (height, width) == (source_height, source_width) else shards.RESIZE_RULE}


def plan_shards(scans: Dict[str, SplitScan], shard_size: int) -> List[ShardPlan]:
    """Cut each split's id-sorted samples into shards of ``shard_size`` (the last may be shorter)."""
    if shard_size < 1:
        raise DataError(f"--shard_size must be >= 1, got {shard_size}")
    plans = []
    for split, scan in scans.items():
        for index, start in enumerate(range(0, len(scan.samples), shard_size)):
            plans.append(ShardPlan(split, shards.shard_name(split, index),
                                   tuple(scan.samples[start:start + shard_size])))
    return plans


def new_manifest(scans: Dict[str, SplitScan], resolution: Dict[str, Any], shard_size: int,
                 plans: List[ShardPlan]) -> Dict[str, Any]:
    """An incomplete manifest listing no shard yet; ``source`` records the scan it came from."""
    splits = {}
    for split, scan in scans.items():
        ids = [sample.sample_id for sample in scan.samples]
        splits[split] = {"samples": len(ids), "planned_shards": sum(p.split == split for p in plans),
                         "ids_sha256": shards.ids_digest(ids), "shards": []}
    return {
        "format": shards.FORMAT,
        "format_version": shards.FORMAT_VERSION,
        "complete": False,
        "created_by": f"efnas {__version__}",
        "resolution": resolution,
        "shard_size": shard_size,
        "layout": {"img0": "uint8 [N,H,W,3] RGB", "img1": "uint8 [N,H,W,3] RGB",
                   "flow": "float32 [N,H,W,2] (u, v) in pixels of the stored resolution",
                   "sample_ids": "utf-8 [N]", "storage": "contiguous, no HDF5 filter",
                   shards.HASHES: "uint64 [N,3]: xxh3_64 of each sample's img0, img1, flow bytes, checked on read"},
        "source": {"pattern": SAMPLE_PATTERN,
                   "splits": {split: str(scan.directory.resolve()) for split, scan in scans.items()},
                   "scan": build_report(scans)},
        "splits": splits,
    }


def _same_plan(old: Dict[str, Any], new: Dict[str, Any]) -> bool:
    """Whether a partial manifest describes the pack about to run (same source, ids and settings)."""
    keys = ("resolution", "shard_size")
    split_keys = ("samples", "planned_shards", "ids_sha256")
    return (all(old.get(key) == new[key] for key in keys)
            and old.get("source", {}).get("splits") == new["source"]["splits"]
            and set(old["splits"]) == set(new["splits"])
            and all(old["splits"][s].get(k) == new["splits"][s][k] for s in new["splits"] for k in split_keys))


def _resume(out: Path, fresh: Dict[str, Any], plans: List[ShardPlan], result: PackResult) -> Dict[str, Any]:
    """Start from the manifest already in ``out``: keep listed shards whose sha256 and ids still match."""
    old = shards.read_manifest(out)
    if not _same_plan(old, fresh):
        raise DataError(f"{out}: holds a pack of another source, sample set or settings (see its "
                        f"{shards.MANIFEST_NAME}); use a new --out directory or delete this one")
    planned_ids = {plan.file: shards.ids_digest(plan.sample_ids) for plan in plans}
    for split, info in old["splits"].items():
        for entry in info["shards"]:
            path = out / entry["file"]
            if (path.is_file() and entry.get("ids_sha256") == planned_ids.get(entry["file"])
                    and shards.sha256_file(path) == entry["sha256"]):
                fresh["splits"][split]["shards"].append(entry)
                result.reused.append(entry["file"])
            else:
                result.redone.append(entry["file"])
    return fresh


def prepare_output(out: Path, fresh: Dict[str, Any], plans: List[ShardPlan], result: PackResult) -> Dict[str, Any]:
    """Resume ``out`` (dropping temp files a killed pack left) or start it; write the starting manifest."""
    if (out / shards.MANIFEST_NAME).exists():
        manifest = _resume(out, fresh, plans, result)
        for stale in chain(out.glob(".*.h5.tmp-*"), out.glob(f".{shards.MANIFEST_NAME}.tmp-*")):
            stale.unlink()
    elif any(path.name != LOCK_NAME for path in out.iterdir()):
        raise DataError(f"{out}: directory is not empty and has no {shards.MANIFEST_NAME}; "
                        "pack into a new or empty --out directory")
    else:
        manifest = fresh
    write_json_atomic(out / shards.MANIFEST_NAME, manifest)
    return manifest


def load_sample(task: Tuple[Sample, int, int]) -> Arrays:
    """Decode one sample (read_sample refuses non-finite flow), resize it (runs in a worker process)."""
    sample, height, width = task
    return resize_sample(*read_sample(sample.img0, sample.img1, sample.flow), height, width)


def ordered_map(function: Callable, items: Iterable, workers: int) -> Iterator:
    """``map`` over worker processes, in order, with a bounded number of results in flight."""
    if workers <= 1:
        yield from map(function, items)
        return
    pool = ProcessPoolExecutor(max_workers=workers)
    pending: deque = deque()
    try:
        for item in items:
            pending.append(pool.submit(function, item))
            if len(pending) >= workers * IN_FLIGHT_PER_WORKER:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def write_shard(out: Path, plan: ShardPlan, arrays: Iterable[Arrays], resolution: Dict[str, Any]) -> Dict[str, Any]:
    """Write one shard to a temp file, fsync it, rename it into place; return its manifest entry."""
    final = out / plan.file
    tmp = out / f".{plan.file}.tmp-{os.getpid()}"
    count, height, width = len(plan.samples), resolution["height"], resolution["width"]
    pack_output.require_space(out, plan.file, count * shards.sample_bytes(height, width))
    attrs = {"split": plan.split, "height": height, "width": width}
    try:
        writer = shards.create_shard(tmp, plan.sample_ids, height, width, attrs)
        try:
            written = 0
            for index, sample_arrays in enumerate(arrays):
                writer.write(index, sample_arrays)
                written += 1
            if written != count:
                raise DataError(f"{final}: received {written} samples for a shard planned with {count}")
            writer.finish()
        finally:
            writer.close()
        with open(tmp, "rb+") as raw:
            os.fsync(raw.fileno())
        os.replace(tmp, final)
        fsync_dir(out)
    except OSError as error:
        if error.errno is None:
            raise
        raise write_error(out, error, plan.file) from None
    finally:
        if tmp.exists():
            tmp.unlink()
    return {"file": plan.file, "samples": count, "first_id": plan.sample_ids[0], "last_id": plan.sample_ids[-1],
            "ids_sha256": shards.ids_digest(plan.sample_ids), "sha256": shards.sha256_file(final)}


def require_training_size(height: int, width: int) -> None:
    """ConfigError unless --height/--width obey the schema's rule for data.input_height/input_width."""
    schema = load_schema()
    rules = schema["properties"]["data"]["properties"]
    for option, key, value in (("--height", "input_height", height), ("--width", "input_width", width)):
        rule = rules[key]
        low, high, step = rule.get("minimum", 1), rule.get("maximum"), rule.get("multipleOf", 1)
        if value < low or (high is not None and value > high) or value % step:
            nearest = max(low, min(high or value, round(value / step) * step))
            span = f"{low}..{high}" if high is not None else f">= {low}"
            raise ConfigError(f"{option} {value}: training needs data.{key} to be a multiple of {step} in {span} "
                              f"(the model predicts at 1/4 and 1/2 scale); use e.g. {option} {nearest}, "
                              "or --resolution native")


def pack(src: Path, out: Path, resolution: str = "train", height: int = 180, width: int = 240,
         shard_size: int = 1000, workers: int = 1, progress: bool = False,
         notice: Optional[Callable[[str], None]] = None) -> PackResult:
    """Pack FC2 ``src`` (train/ and val/) into shards in ``out``; resumes an interrupted pack.

    ``out`` is locked first (LockedError naming the holder if another pack
    writes it); a pack that fails before completing a shard leaves no trace:
    a directory it created is removed, a pre-existing one is left as it was.
    """
    src, out = Path(src), Path(out)
    if resolution == "train":
        require_training_size(height, width)
    result = PackResult(out, {})
    with claimed_output(out, f"efnas pack --src {src}", notice,
                        completed=lambda: bool(result.written or result.reused)):
        _pack_locked(src, out, resolution, height, width, shard_size, workers, progress, result)
    return result


def _pack_locked(src: Path, out: Path, resolution: str, height: int, width: int, shard_size: int, workers: int,
                 progress: bool, result: PackResult) -> None:
    """Scan, plan and write the pack into the locked ``out``; OS write errors become one-line DataErrors."""
    scans = scan_source(src, workers=workers)
    size = resolution_entry(scans, resolution, height, width)
    plans = plan_shards(scans, shard_size)
    try:
        manifest = prepare_output(out, new_manifest(scans, size, shard_size, plans), plans, result)
        _write_missing(out, manifest, plans, result, workers, progress)
        manifest["complete"] = True
        write_json_atomic(out / shards.MANIFEST_NAME, manifest)
    except OSError as error:
        if error.errno is None:
            raise
        raise write_error(out, error) from None
    result.manifest = manifest


def _write_missing(out: Path, manifest: Dict[str, Any], plans: List[ShardPlan], result: PackResult, workers: int,
                   progress: bool) -> None:
    """Write every planned shard the manifest does not list yet, updating the manifest after each."""
    from tqdm import tqdm

    size = manifest["resolution"]
    done = {entry["file"] for info in manifest["splits"].values() for entry in info["shards"]}
    todo = [plan for plan in plans if plan.file not in done]
    tasks = ((sample, size["height"], size["width"]) for plan in todo for sample in plan.samples)
    decoded = ordered_map(load_sample, tasks, workers)
    # The bar counts every sample of the pack: its label says so, and which shard is being written.
    bar = tqdm(total=sum(len(plan.samples) for plan in todo), unit="sample", disable=not progress)
    try:
        for index, plan in enumerate(todo, start=1):
            bar.set_description(pack_label(index, len(todo), plan.file))
            entry = write_shard(out, plan, _counted(islice(decoded, len(plan.samples)), bar), size)
            split_info = manifest["splits"][plan.split]
            split_info["shards"] = sorted(split_info["shards"] + [entry], key=lambda e: e["file"])
            write_json_atomic(out / shards.MANIFEST_NAME, manifest)
            result.written.append(plan.file)
    finally:
        decoded.close()
        bar.close()


def pack_label(index: int, count: int, file: str) -> str:
    """The pack bar's label: all samples of the pack, now in shard ``index`` of ``count`` (its file name)."""
    return f"pack (shard {index}/{count}: {file})"


def _counted(items: Iterable, bar) -> Iterator:
    """Pass items through, advancing a progress bar by one per item."""
    for item in items:
        yield item
        bar.update(1)


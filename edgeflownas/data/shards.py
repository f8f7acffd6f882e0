"""The packed FC2 format: per-split HDF5 shards described by ``manifest.json``.

A shard ``<split>-NNNNN.h5`` (format version 2) holds ``img0``/``img1`` (uint8
[N,H,W,3] RGB), ``flow`` (float32 [N,H,W,2], pixels of the stored resolution),
stored contiguously without HDF5 filters, plus ``sample_ids`` (utf-8 [N]) and
``xxh3_64`` (uint64 [N,3]: the xxh3_64 hash of each sample's img0, img1 and flow
bytes; a damaged hash fails its sample's check like damaged data).  Samples are copied from
a read-only memory map straight into the caller's batch and checked against their
stored hashes (``ShardLayout.read``): copy and hash release the GIL, so loader
threads do not serialise (they are bound by memory bandwidth instead; see
benchmarks/bench_loader.py), and the hash costs ~0.01-0.03 ms per 180x240
sample where HDF5's fletcher32 cost ~0.2 ms.
Version 1 (fletcher32 chunks, read through h5py) is refused with a re-pack hint.
The manifest lists only shards that were completely written, each with its
sample count and sha256.  ``efnas pack`` writes this format, the loader reads
it and ``verify_shards`` (``efnas data-check --shards``) audits it.

h5py and xxhash are imported inside the functions that need them (``efnas --help`` stays fast).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from edgeflownas.errors import DataError

FORMAT = "efnas-fc2-shards"
FORMAT_VERSION = 2
MANIFEST_NAME = "manifest.json"
SPLITS = ("train", "val")
RESIZE_RULE = ("cv2.resize INTER_LINEAR of img0, img1 and flow to height x width; "
               "flow u *= width / source_width, v *= height / source_height")
# name -> (dtype, channels): the per-sample arrays of a shard.
ARRAYS = {"img0": (np.uint8, 3), "img1": (np.uint8, 3), "flow": (np.float32, 2)}
HASHES = "xxh3_64"  # dataset [N, len(ARRAYS)] uint64: xxh3_64 of each array of each sample
_HASH_BLOCK = 1 << 22
SHA256_THREADS = 4  # start-up verification: ~1.0-1.4 GB/s of sha256 per core (docs/data.md, "Shard sha256 at start-up")


def shard_name(split: str, index: int) -> str:
    """File name of shard ``index`` of ``split``."""
    return f"{split}-{index:05d}.h5"


def hdf5_locking() -> Dict[str, Any]:
    """Keyword for h5py.File: no file locking unless the user set HDF5_USE_FILE_LOCKING.

    HDF5 locks files on open; on cluster filesystems (Lustre, GPFS, NFS) the
    lock fails or hangs, and read-only shards never need it.  The variable is
    set to FALSE when unset (for child processes too), and ``locking=False`` is
    passed as well because HDF5 reads the variable only once, when it starts.
    """
    os.environ.setdefault("HDF5_USE_FILE_LOCKING", "FALSE")
    return {"locking": False} if os.environ["HDF5_USE_FILE_LOCKING"].upper() == "FALSE" else {}


def open_shard(path: Path):
    """Open a shard read-only (chunk cache off: every chunk is read once per epoch)."""
    locking = hdf5_locking()
    import h5py

    try:
        return h5py.File(path, "r", rdcc_nbytes=0, **locking)
    except FileNotFoundError:
        raise DataError(f"{path}: shard listed in {MANIFEST_NAME} does not exist; re-run 'efnas pack'") from None
    except OSError as exc:
        raise DataError(f"{path}: not a readable HDF5 shard ({exc}); re-run 'efnas pack'") from None


def sample_bytes(height: int, width: int) -> int:
    """Raw bytes of one sample's arrays at height x width (a lower bound of its size in a shard)."""
    return sum(height * width * channels * np.dtype(dtype).itemsize for dtype, channels in ARRAYS.values())


def create_shard(path: Path, sample_ids: List[str], height: int, width: int,
                 attrs: Dict[str, Any]) -> "ShardWriter":
    """Create a shard file (ids and attributes written, sample and hash datasets allocated); a writer for the rest.

    HDF5 writes only this small metadata.  The samples and hashes are then written
    with plain pwrite at their fixed offsets: on a full disk HDF5's own flush on
    close failed again and again (a traceback per chunk, then a segfault or a hang),
    where a pwrite fails once with ENOSPC.
    """
    locking = hdf5_locking()
    import h5py

    count = len(sample_ids)
    encoded = [sample_id.encode("utf-8") for sample_id in sample_ids]
    shapes = {name: (count, height, width, channels) for name, (_, channels) in ARRAYS.items()}
    dtypes = {name: dtype for name, (dtype, _) in ARRAYS.items()}
    shapes[HASHES], dtypes[HASHES] = (count, len(ARRAYS)), np.uint64
    with h5py.File(path, "w", **locking) as handle:
        for name, shape in shapes.items():
            # Contiguous, allocated now and never filled: the data lies at offset + i * sample size.
            dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
            dcpl.set_alloc_time(h5py.h5d.ALLOC_TIME_EARLY)
            dcpl.set_fill_time(h5py.h5d.FILL_TIME_NEVER)
            handle.create_dataset(name, shape=shape, dtype=dtypes[name], dcpl=dcpl)
        # Fixed-length strings: HDF5 cannot checksum variable-length data.
        id_type = h5py.string_dtype("utf-8", length=max(map(len, encoded)))
        handle.create_dataset("sample_ids", data=np.array(encoded, dtype=id_type), fletcher32=True, chunks=True)
        handle.attrs.update({"format": FORMAT, "format_version": FORMAT_VERSION, **attrs})
        offsets = {name: handle[name].id.get_offset() for name in shapes}
    return ShardWriter(Path(path), offsets, shapes)


class ShardWriter:
    """Writes the samples of a shard made by ``create_shard`` and, at ``finish``, their xxh3_64 hashes."""

    def __init__(self, path: Path, offsets: Dict[str, int], shapes: Dict[str, Tuple[int, ...]]) -> None:
        self.path, self.offsets, self.shapes = path, offsets, shapes
        self.hashes = np.zeros(shapes[HASHES], np.uint64)
        self.fd: Optional[int] = os.open(path, os.O_RDWR)

    def write(self, index: int, arrays: Tuple[np.ndarray, ...]) -> None:
        """Store sample ``index`` (img0, img1, flow) and remember its hashes."""
        import xxhash

        for number, (name, (dtype, _)) in enumerate(ARRAYS.items()):
            array = np.ascontiguousarray(arrays[number], dtype)
            if array.shape != self.shapes[name][1:]:
                raise DataError(f"{self.path}: sample {index} '{name}' has shape {array.shape}, the shard holds "
                                f"{self.shapes[name][1:]}")
            self._write_at(self.offsets[name] + index * array.nbytes, array)
            self.hashes[index, number] = xxhash.xxh3_64_intdigest(array)

    def finish(self) -> None:
        """Store the hashes and close the file (the caller fsyncs and renames it)."""
        self._write_at(self.offsets[HASHES], self.hashes)
        self.close()

    def close(self) -> None:
        """Close the file; idempotent (a failed shard is closed, then deleted by the caller)."""
        if self.fd is not None:
            fd, self.fd = self.fd, None
            os.close(fd)

    def _write_at(self, offset: int, array: np.ndarray) -> None:
        view = memoryview(array).cast("B")
        while view:  # pwrite may write less than asked
            written = os.pwrite(self.fd, view, offset)
            view, offset = view[written:], offset + written


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(_HASH_BLOCK), b""):
            digest.update(block)
    return digest.hexdigest()


def require_sha256(directory: Path, entries: List[Dict[str, Any]], threads: int = SHA256_THREADS) -> None:
    """DataError naming the first listed shard whose sha256 differs from the manifest's (hashed in threads)."""
    from concurrent.futures import ThreadPoolExecutor

    paths = [Path(directory) / entry["file"] for entry in entries]
    for path in paths:
        if not path.is_file():
            raise DataError(f"{path}: shard listed in {MANIFEST_NAME} does not exist; re-run 'efnas pack'")
    # hashlib releases the GIL on large blocks, so threads hash shards in parallel.
    with ThreadPoolExecutor(max(1, min(threads, len(paths), os.cpu_count() or 1))) as pool:
        for path, entry, digest in zip(paths, entries, pool.map(sha256_file, paths)):
            if digest != entry["sha256"]:
                raise DataError(f"{path}: sha256 {digest} differs from the {entry['sha256']} in "
                                f"{Path(directory) / MANIFEST_NAME}: the shard changed after packing; re-run the same "
                                "'efnas pack' (it rewrites only damaged shards), then 'efnas data-check --shards "
                                f"{directory}'")


def ids_digest(sample_ids: List[str]) -> str:
    """sha256 of a list of sample ids (identifies which samples a split or shard holds)."""
    return hashlib.sha256("\n".join(sample_ids).encode("utf-8")).hexdigest()


def read_manifest(directory: Path) -> Dict[str, Any]:
    """Load and structurally check ``directory/manifest.json``; DataError naming what is wrong."""
    path = Path(directory) / MANIFEST_NAME
    if not path.is_file():
        raise DataError(f"{path}: no shard manifest (expected the output directory of 'efnas pack')")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"{path}: unreadable manifest ({exc}); re-run 'efnas pack'") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise DataError(f"{path}: not an {FORMAT} manifest (format={_get(manifest, 'format')!r})")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise DataError(f"{path}: format_version {manifest.get('format_version')!r} is not read by this efnas, "
                        f"which reads {FORMAT_VERSION} (unfiltered samples with an xxh3_64 hash each; version 1 "
                        "verified HDF5 fletcher32 chunks at a quarter of memory speed); re-pack the source "
                        f"{_source_root(manifest)} into a new directory: 'efnas pack --src <FC2 root> --out <new dir>'")
    for key, kind in (("complete", bool), ("resolution", dict), ("splits", dict), ("shard_size", int)):
        if not isinstance(manifest.get(key), kind):
            raise DataError(f"{path}: key '{key}' missing or not a {kind.__name__}")
    for split, info in manifest["splits"].items():
        shards = info.get("shards") if isinstance(info, dict) else None
        if not isinstance(shards, list) or not all(
                isinstance(s, dict) and {"file", "samples", "sha256"} <= set(s) for s in shards):
            raise DataError(f"{path}: splits.{split}.shards must list {{file, samples, sha256}} entries")
    return manifest


def _get(mapping: Any, key: str) -> Any:
    return mapping.get(key) if isinstance(mapping, dict) else None


def _source_root(manifest: Dict[str, Any]) -> str:
    """The FC2 root a manifest was packed from (parent of its train folder), for re-pack hints."""
    train = _get(_get(_get(manifest, "source"), "splits"), "train")
    return f"({Path(train).parent})" if isinstance(train, str) else "(FC2 root unknown)"


def stored_size(manifest: Dict[str, Any]) -> Tuple[int, int]:
    """(height, width) the shards of a manifest are stored at."""
    return int(manifest["resolution"]["height"]), int(manifest["resolution"]["width"])


@dataclass
class ShardsReport:
    """Outcome of ``verify_shards``: per-split sample/shard counts and every problem found."""

    directory: Path
    samples: Dict[str, int] = field(default_factory=dict)
    shards: Dict[str, int] = field(default_factory=dict)
    problems: List[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when the packed set has no problem."""
        return not self.problems

    def format(self) -> str:
        """Printable summary: counts per split, then one line per problem."""
        lines = [f"{split}_samples: {count} ({self.shards[split]} shards)" for split, count in self.samples.items()]
        lines += [f"problem: {problem}" for problem in self.problems]
        lines.append(f"shards: {'ok' if self.ok else f'{len(self.problems)} problems'} in {self.directory}")
        return "\n".join(lines)


def _layout_problems(path: Path, handle, count: int, size: tuple) -> List[str]:
    """Datasets missing, not of the shape/dtype the manifest implies, or not contiguous and unfiltered."""
    problems = []
    for name, (dtype, channels) in ARRAYS.items():
        expected = (count, size[0], size[1], channels)
        if name not in handle or handle[name].shape != expected or handle[name].dtype != dtype:
            found = f"{handle[name].shape} {handle[name].dtype}" if name in handle else "no such dataset"
            problems.append(f"{path}: dataset '{name}' should be {expected} {np.dtype(dtype)}, found {found} "
                            f"(manifest says {count} samples)")
        elif handle[name].chunks is not None or handle[name].id.get_offset() is None:
            problems.append(f"{path}: dataset '{name}' is chunked or was never written, not the contiguous "
                            f"storage of format {FORMAT_VERSION}; re-pack this shard")
    if "sample_ids" not in handle or handle["sample_ids"].shape != (count,):
        problems.append(f"{path}: dataset 'sample_ids' should hold {count} ids (manifest count)")
    if HASHES not in handle or handle[HASHES].shape != (count, len(ARRAYS)):
        problems.append(f"{path}: dataset '{HASHES}' should hold {len(ARRAYS)} hashes per sample for {count} "
                        "samples; re-pack this shard")
    return problems


@dataclass(frozen=True)
class ShardLayout:
    """Where one shard's samples lie in its file and the hash each must have (picklable, no open file)."""

    path: Path
    sample_ids: List[str]
    offsets: Tuple[int, ...]  # file offset of each array of ARRAYS
    shapes: Tuple[Tuple[int, ...], ...]  # shape of each array of ARRAYS, [N, H, W, C]
    hashes: List[Tuple[int, ...]]  # per sample, the xxh3_64 of each array

    def map(self) -> Tuple[np.ndarray, ...]:
        """Read-only memory-mapped views of the sample arrays; DataError if the file is too short for them."""
        import mmap

        try:
            fd = os.open(self.path, os.O_RDONLY)
        except FileNotFoundError:
            raise DataError(f"{self.path}: shard listed in {MANIFEST_NAME} does not exist; re-run 'efnas pack'") \
                from None
        try:
            size = os.fstat(fd).st_size
            ends = [offset + int(np.prod(shape)) * np.dtype(dtype).itemsize
                    for offset, shape, (dtype, _) in zip(self.offsets, self.shapes, ARRAYS.values())]
            # A mapping past the end of the file would crash the reader (SIGBUS) instead of raising.
            if max(ends) > size:
                raise DataError(f"{self.path}: {size} bytes, shorter than its datasets ({max(ends)} bytes); the "
                                f"shard was truncated: run 'efnas data-check --shards {self.path.parent}' and re-pack")
            mapped = mmap.mmap(fd, 0, access=mmap.ACCESS_READ)
        finally:
            os.close(fd)
        return tuple(np.ndarray(shape, dtype, buffer=mapped, offset=offset)
                     for offset, shape, (dtype, _) in zip(self.offsets, self.shapes, ARRAYS.values()))

    def read(self, views: Sequence[np.ndarray], local: int, outs: Sequence[np.ndarray], position: int) -> None:
        """Copy sample ``local`` from ``map()``'s views into ``outs[...][position]``, checking its hashes."""
        import xxhash

        for number, (name, view, out) in enumerate(zip(ARRAYS, views, outs)):
            target = out[position]
            # The copy and the hash release the GIL (threads do not serialise); the copy is hashed
            # while it is still in the CPU cache, and what is hashed is what the caller gets.
            np.copyto(target, view[local])
            digest = xxhash.xxh3_64_intdigest(target)
            if digest != self.hashes[local][number]:
                raise DataError(f"{self.path}: sample {local} (id {self.sample_ids[local]}) cannot be read (dataset "
                                f"'{name}': {HASHES} {digest:016x} differs from the "
                                f"{self.hashes[local][number]:016x} stored when it was packed); the shard is "
                                f"corrupt: run 'efnas data-check --shards {self.path.parent}' and re-pack")


def read_layout(path: Path, count: int, size: tuple) -> ShardLayout:
    """The layout of a shard the manifest lists with ``count`` samples at ``size``; DataError if it differs."""
    with open_shard(path) as handle:
        if "sample_ids" in handle and handle["sample_ids"].shape != (count,):
            raise DataError(f"{path}: holds {len(handle['sample_ids'])} samples but {path.parent / MANIFEST_NAME} "
                            f"lists {count}; the shard or the manifest was changed, re-pack")
        problems = _layout_problems(path, handle, count, size)
        if problems:
            raise DataError(problems[0])
        try:
            hashes = [tuple(row) for row in handle[HASHES][:].tolist()]
            sample_ids = list(handle["sample_ids"].asstr()[:])
        except OSError as exc:
            raise DataError(f"{path}: sample ids or hashes unreadable ({exc}); re-pack this shard") from None
        return ShardLayout(Path(path), sample_ids, tuple(handle[name].id.get_offset() for name in ARRAYS),
                           tuple(handle[name].shape for name in ARRAYS), hashes)


def _verify_shard(path: Path, entry: Dict[str, Any], size: tuple) -> List[str]:
    """Problems of one shard: sha256, dataset shapes/counts, and every sample against its stored hashes."""
    if not path.is_file():
        return [f"{path}: shard listed in {MANIFEST_NAME} does not exist"]
    problems = []
    digest = sha256_file(path)
    if digest != entry["sha256"]:
        problems.append(f"{path}: sha256 {digest} differs from the manifest's {entry['sha256']} (file changed)")
    count = int(entry["samples"])
    try:
        with open_shard(path) as handle:
            layout_problems = _layout_problems(path, handle, count, size)  # all of them, not the first
        if layout_problems:
            return problems + layout_problems
        layout = read_layout(path, count, size)
    except DataError as error:
        return problems + [str(error)]
    outs = [np.empty((1, size[0], size[1], channels), dtype) for dtype, channels in ARRAYS.values()]
    try:
        views = layout.map()
    except DataError as error:
        return problems + [str(error)]
    for index in range(count):  # every sample: a failure names the sample
        try:
            layout.read(views, index, outs, 0)
        except DataError as error:
            problems.append(str(error))
    if ids_digest(layout.sample_ids) != entry.get("ids_sha256"):
        problems.append(f"{path}: its sample_ids differ from the ids the manifest lists for it (ids_sha256)")
    return problems


def verify_shards(directory: Path, progress: bool = False) -> ShardsReport:
    """Verify a packed set: manifest, every shard present, sha256, counts and every sample's hashes."""
    from tqdm import tqdm

    directory = Path(directory)
    report = ShardsReport(directory)
    try:
        manifest = read_manifest(directory)
    except DataError as error:
        report.problems.append(str(error))
        return report
    if not manifest["complete"]:
        report.problems.append(f"{directory / MANIFEST_NAME}: pack is incomplete (interrupted); "
                               "re-run the same 'efnas pack' command to finish it")
    size = stored_size(manifest)
    entries = [(split, entry) for split, info in manifest["splits"].items() for entry in info["shards"]]
    for split, info in manifest["splits"].items():
        listed = sum(int(entry["samples"]) for entry in info["shards"])
        report.samples[split] = listed
        report.shards[split] = len(info["shards"])
        if listed != info.get("samples"):
            report.problems.append(f"{directory / MANIFEST_NAME}: split '{split}' declares {info.get('samples')} "
                                   f"samples but its shards list {listed}")
        if listed == 0:
            report.problems.append(f"{directory / MANIFEST_NAME}: split '{split}' has 0 samples")
    for split, entry in tqdm(entries, unit="shard", disable=not progress, leave=False):
        report.problems += _verify_shard(directory / entry["file"], entry, size)
    return report

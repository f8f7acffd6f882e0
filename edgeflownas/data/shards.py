"""The packed FC2 format: per-split HDF5 shards described by ``manifest.json``.

A shard ``<split>-NNNNN.h5`` holds ``img0``/``img1`` (uint8 [N,H,W,3] RGB),
``flow`` (float32 [N,H,W,2], pixels of the stored resolution) and
``sample_ids`` (utf-8 [N]).  Every dataset is chunked one sample per chunk with
a fletcher32 checksum per chunk, so HDF5 refuses to return a corrupted sample.
The manifest lists only shards that were completely written, each with its
sample count and sha256.  ``efnas pack`` writes this format, the loader reads
it and ``verify_shards`` (``efnas data-check --shards``) audits it.

h5py is imported inside the functions that need it (``efnas --help`` stays fast).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Tuple

import numpy as np

from edgeflownas.errors import DataError

FORMAT = "efnas-fc2-shards"
FORMAT_VERSION = 1
MANIFEST_NAME = "manifest.json"
SPLITS = ("train", "val")
RESIZE_RULE = ("cv2.resize INTER_LINEAR of img0, img1 and flow to height x width; "
               "flow u *= width / source_width, v *= height / source_height")
# name -> (dtype, channels): the per-sample arrays of a shard.
ARRAYS = {"img0": (np.uint8, 3), "img1": (np.uint8, 3), "flow": (np.float32, 2)}
_HASH_BLOCK = 1 << 22
SHA256_THREADS = 4  # start-up verification: ~1.0-1.4 GB/s of sha256 per core (README, "Shards")


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


def create_shard(path: Path, sample_ids: List[str], height: int, width: int, attrs: Dict[str, Any]):
    """Create a shard file holding ``sample_ids`` and empty sample datasets (one sample per chunk, fletcher32).

    The chunk cache is off: each sample is written by the call that writes it, so a
    failed write (full disk) raises there, not later while HDF5 evicts cached chunks
    inside object destructors, which printed a traceback per chunk and then segfaulted.
    """
    locking = hdf5_locking()
    import h5py

    encoded = [sample_id.encode("utf-8") for sample_id in sample_ids]
    handle = h5py.File(path, "w", rdcc_nbytes=0, **locking)
    for name, (dtype, channels) in ARRAYS.items():
        shape = (len(sample_ids), height, width, channels)
        handle.create_dataset(name, shape=shape, dtype=dtype, chunks=(1,) + shape[1:], fletcher32=True)
    # Fixed-length strings: HDF5 cannot checksum variable-length data.
    id_type = h5py.string_dtype("utf-8", length=max(map(len, encoded)))
    handle.create_dataset("sample_ids", data=np.array(encoded, dtype=id_type), fletcher32=True, chunks=True)
    handle.attrs.update({"format": FORMAT, "format_version": FORMAT_VERSION, **attrs})
    return handle


def discard_shard(handle, cause: BaseException) -> None:
    """Close a shard abandoned because of ``cause``; its file is deleted by the caller.

    Closing flushes HDF5 metadata, which fails again on a full disk (OSError or
    RuntimeError from h5py); ``cause`` stays the error reported, the second
    failure is attached to it as a note.
    """
    try:
        handle.close()
    except (OSError, RuntimeError) as error:
        cause.add_note(f"closing the abandoned shard also failed: {error}")


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
        raise DataError(f"{path}: format_version {manifest.get('format_version')!r} is not supported "
                        f"(this efnas reads {FORMAT_VERSION}); re-pack with this version")
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
    """Datasets missing or not of the shape/dtype the manifest implies."""
    problems = []
    for name, (dtype, channels) in ARRAYS.items():
        expected = (count, size[0], size[1], channels)
        if name not in handle or handle[name].shape != expected or handle[name].dtype != dtype:
            found = f"{handle[name].shape} {handle[name].dtype}" if name in handle else "no such dataset"
            problems.append(f"{path}: dataset '{name}' should be {expected} {np.dtype(dtype)}, found {found} "
                            f"(manifest says {count} samples)")
    if "sample_ids" not in handle or handle["sample_ids"].shape != (count,):
        problems.append(f"{path}: dataset 'sample_ids' should hold {count} ids (manifest count)")
    return problems


def _verify_shard(path: Path, entry: Dict[str, Any], size: tuple) -> List[str]:
    """Problems of one shard: sha256, dataset shapes/counts, and a read of every chunk (fletcher32)."""
    if not path.is_file():
        return [f"{path}: shard listed in {MANIFEST_NAME} does not exist"]
    problems = []
    digest = sha256_file(path)
    if digest != entry["sha256"]:
        problems.append(f"{path}: sha256 {digest} differs from the manifest's {entry['sha256']} (file changed)")
    count = int(entry["samples"])
    try:
        handle = open_shard(path)
    except DataError as error:
        return problems + [str(error)]
    with handle:
        layout = _layout_problems(path, handle, count, size)
        if layout:
            return problems + layout
        for name in (*ARRAYS, "sample_ids"):
            dataset = handle[name]
            for index in range(count):  # one chunk per sample: a failure names the sample
                try:
                    dataset[index]
                except OSError as exc:
                    problems.append(f"{path}: dataset '{name}' sample {index} unreadable, checksum or "
                                    f"storage error ({exc}); re-pack this shard")
        if not problems and ids_digest(list(handle["sample_ids"].asstr()[:])) != entry.get("ids_sha256"):
            problems.append(f"{path}: its sample_ids differ from the ids the manifest lists for it (ids_sha256)")
    return problems


def verify_shards(directory: Path, progress: bool = False) -> ShardsReport:
    """Verify a packed set: manifest, every shard present, sha256, counts and every chunk's checksum."""
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

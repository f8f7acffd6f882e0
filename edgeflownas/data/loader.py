"""One loader for both data sources: FC2 folders or the HDF5 shards of ``efnas pack``.

``open_source(data_cfg, split)`` returns a ``SampleSource`` serving samples at
the training resolution (``data.input_height`` x ``data.input_width``); it
refuses train and val that are one folder or share byte-identical samples:

- ``FolderSource`` decodes PNG + ``.flo`` and resizes (flow rescaled) exactly as
  ``efnas pack`` does, so both sources give identical samples; a flow with NaN
  or inf is refused when read, naming its file.
- ``ShardSource`` reads shards stored at that resolution, or native-resolution
  shards resized on read.  Shards of another resized resolution are refused
  (resizing twice would not match the folder pipeline).  Opening it checks every
  shard of the split against the sha256 in the manifest (13-20 s measured for
  the 13.5 GB of the FC2 train split at 180x240; see docs/data.md), so a damaged
  shard stops a run before it starts, not when its sample is first read; every
  read still checks the sample's xxh3_64 hashes (``shards.ShardLayout``).  HDF5
  reads only the ids, hashes and offsets at opening; samples are copied from
  read-only memory maps of the shards, made lazily by the process that reads
  them and made again after a fork.  Unless the user set ``HDF5_USE_FILE_LOCKING``,
  shards open with file locking off (and the variable is set to FALSE),
  because file locks fail or hang on cluster filesystems (Lustre, GPFS, NFS).

``BatchLoader`` turns a source into batches: the sample order of an epoch is a
pure function of (seed, epoch), ``batches(epoch, start_batch)`` resumes exactly
at a batch index, and worker threads prefetch batches in the background while
the trainer computes.  Batches are written into reused buffers (``BatchBuffers``):
a new batch (9.7 MB at 16 x 180x240) on every read cost page faults and
zeroing, which halved shard throughput inline and more than halved it with two
threads (``benchmarks/bench_loader.py``).
PNG decoding and resizing run in parallel threads (OpenCV releases the GIL).
Shard reads are bound by memory bandwidth, not by the GIL (numpy's copy and
xxh3_64 release it): on the 2-core test machine, 2 threads read 1.0-1.2x and
2 worker processes (a prototype) 1.0-1.25x what one thread reads, so threads
suffice and the workers' use is to overlap the reads with training.
"""

from __future__ import annotations

import bisect
import hashlib
import ctypes
import itertools
import os
import threading
import weakref
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Deque, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from edgeflownas.config_types import DataConfig
from edgeflownas.data import shards
from edgeflownas.data.io import read_sample, resize_sample
from edgeflownas.data.scan import (
    list_samples, require_samples, same_folder, same_folder_message, scan_split, shared_samples,
    shared_samples_message,
)
from edgeflownas.errors import ConfigError, DataError

Arrays = Tuple[np.ndarray, np.ndarray, np.ndarray]

# A split's content digest is "<kind>:<sha256>"; digests of different kinds (folders vs. shards of the same
# samples) are not comparable, digests of one kind are equal exactly when the content is.
FOLDER_CONTENT = "folders-v1"
SHARD_CONTENT = "shards-v1"
CONTENT_SAMPLES = 8  # samples of a folder split whose bytes enter its digest, spread evenly over the ids


def content_mismatch(recorded: Optional[str], now: str) -> bool:
    """True when ``recorded`` and ``now`` are content digests of the same kind that differ."""
    if not isinstance(recorded, str) or ":" not in recorded:
        return False
    return recorded.split(":", 1)[0] == now.split(":", 1)[0] and recorded != now


@dataclass(frozen=True)
class Batch:
    """img0/img1 uint8 [B,H,W,3] RGB, flow float32 [B,H,W,2] (training-resolution px), sample ids."""

    img0: np.ndarray
    img1: np.ndarray
    flow: np.ndarray
    ids: Tuple[str, ...]


def empty_batch(count: int, height: int, width: int) -> Tuple[np.ndarray, ...]:
    """Uninitialised img0, img1, flow arrays for ``count`` samples."""
    return tuple(np.empty((count, height, width, channels), dtype)
                 for dtype, channels in shards.ARRAYS.values())


class SampleSource:
    """Random access to one split's samples at the training resolution."""

    height: int
    width: int
    sample_ids: List[str]

    def __len__(self) -> int:
        return len(self.sample_ids)

    def get(self, index: int) -> Arrays:
        """Sample ``index``: (img0, img1, flow)."""
        raise NotImplementedError

    def read_into(self, indices: Sequence[int], arrays: Sequence[np.ndarray]) -> None:
        """Write samples ``indices``, in that order, into rows 0.. of ``arrays`` (img0, img1, flow)."""
        for position, index in enumerate(indices):
            for out, array in zip(arrays, self.get(int(index))):
                out[position] = array

    def get_batch(self, indices: Sequence[int]) -> Batch:
        """Samples ``indices`` stacked in that order, in new arrays."""
        arrays = empty_batch(len(indices), self.height, self.width)
        self.read_into(indices, arrays)
        return Batch(*arrays, ids=tuple(self.sample_ids[int(index)] for index in indices))

    def close(self) -> None:
        """Release open files (a no-op for sources that keep none)."""

    def content_digest(self) -> str:
        """``kind:sha256`` identifying the split's content, not just its ids (see ``content_mismatch``)."""
        raise NotImplementedError


class FolderSource(SampleSource):
    """An FC2 split folder: PNG + .flo decoded and resized on every read."""

    def __init__(self, directory: Path, split: str, height: int, width: int) -> None:
        scan = scan_split(Path(directory))
        require_samples(scan, split)
        if scan.bad:
            raise DataError(f"{directory}: {len(scan.bad)} bad samples, first: {scan.bad[0].detail}; "
                            f"'efnas data-check --{split}_dir {directory}' lists each one")
        self.directory, self.height, self.width = Path(directory), height, width
        self.samples = scan.samples
        self.sample_ids = [sample.sample_id for sample in scan.samples]

    def get(self, index: int) -> Arrays:
        """Decode and resize one sample from its PNG and .flo files."""
        sample = self.samples[index]
        return resize_sample(*read_sample(sample.img0, sample.img1, sample.flow), self.height, self.width)

    def content_digest(self) -> str:
        """Ids and the three file sizes of every sample, and the bytes of a fixed spread of CONTENT_SAMPLES samples.

        Cheap (one stat per file, a few MB read) yet another synthetic set or a re-rendered FC2 with the same
        ids differs in sizes or in the sampled bytes, while the same files moved elsewhere do not.
        """
        digest = hashlib.sha256(FOLDER_CONTENT.encode())
        for sample in self.samples:
            sizes = " ".join(str(os.stat(path).st_size) for path in (sample.img0, sample.img1, sample.flow))
            digest.update(f"{sample.sample_id} {sizes}\n".encode())
        picked = np.unique(np.linspace(0, len(self.samples) - 1, min(CONTENT_SAMPLES, len(self.samples))).round())
        for index in picked.astype(int):
            sample = self.samples[index]
            for path in (sample.img0, sample.img1, sample.flow):
                digest.update(Path(path).read_bytes())
        return f"{FOLDER_CONTENT}:{digest.hexdigest()}"


class ShardSource(SampleSource):
    """One split of a packed set; shard files are opened lazily by the process that reads them."""

    def __init__(self, directory: Path, split: str, height: int, width: int, verify_sha256: bool = True) -> None:
        self.directory, self.split, self.height, self.width = Path(directory), split, height, width
        manifest = shards.read_manifest(self.directory)
        where = self.directory / shards.MANIFEST_NAME
        if not manifest["complete"]:
            raise DataError(f"{where}: pack is incomplete (interrupted); re-run the same 'efnas pack' to finish it")
        entries = manifest["splits"].get(split, {}).get("shards", [])
        if sum(int(entry["samples"]) for entry in entries) == 0:
            raise DataError(f"{where}: split '{split}' has 0 samples (expected shards '{split}-NNNNN.h5')")
        self.stored_size = shards.stored_size(manifest)
        if self.stored_size != (height, width) and manifest["resolution"]["mode"] != "native":
            raise DataError(f"{where}: shards are stored at {self.stored_size[0]}x{self.stored_size[1]} but "
                            f"data.input_height x input_width is {height}x{width}; re-pack with "
                            f"'efnas pack --height {height} --width {width}' (or '--resolution native')")
        sources = manifest.get("source", {}).get("splits", {})
        if sources.get("train") and sources.get("train") == sources.get("val"):
            raise DataError(f"{where}: packed from one folder ({sources['train']}) for both train and val; "
                            "re-pack from an FC2 root whose train/ and val/ differ")
        self.paths = [self.directory / entry["file"] for entry in entries]
        self._shard_sha256 = [str(entry.get("sha256")) for entry in entries]
        if verify_sha256:
            shards.require_sha256(self.directory, entries)
        self.starts = list(itertools.accumulate((int(entry["samples"]) for entry in entries), initial=0))
        self.layouts = [shards.read_layout(path, int(entry["samples"]), self.stored_size)
                        for path, entry in zip(self.paths, entries)]
        self.sample_ids = [sample_id for layout in self.layouts for sample_id in layout.sample_ids]
        self._forget_files()
        _SHARD_SOURCES.add(self)

    def content_digest(self) -> str:
        """The sha256 of the split's shards as the manifest lists them (verified against the files when opened)."""
        digest = hashlib.sha256("\n".join(self._shard_sha256).encode()).hexdigest()
        return f"{SHARD_CONTENT}:{digest}"

    def _forget_files(self) -> None:
        """Start with no open shard (also in a forked child: the parent's files are not ours to use)."""
        self._lock = threading.Lock()
        self._files: Dict[int, Tuple[np.ndarray, ...]] = {}  # shard -> memory-mapped arrays

    def __getstate__(self) -> dict:
        """Pickle without open files or locks (a worker process opens its own)."""
        return {key: value for key, value in self.__dict__.items() if key not in ("_lock", "_files")}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._forget_files()
        _SHARD_SOURCES.add(self)

    def locate(self, index: int) -> Tuple[int, int]:
        """(shard number, index within the shard) of sample ``index``."""
        shard = bisect.bisect_right(self.starts, index) - 1
        return shard, index - self.starts[shard]

    def _read(self, index: int, outs: Sequence[np.ndarray], position: int) -> None:
        """Read sample ``index`` (stored size) into ``outs[...][position]``; corruption -> DataError naming it."""
        shard, local = self.locate(index)
        views = self._files.get(shard)
        if views is None:
            with self._lock:
                if shard not in self._files:
                    self._files[shard] = self.layouts[shard].map()
                views = self._files[shard]
        # No lock while reading: the mapping is read-only, and the copy and the hash release the GIL.
        self.layouts[shard].read(views, local, outs, position)

    def get(self, index: int) -> Arrays:
        """Read one sample (hashes verified) and resize it if the shards hold another size."""
        arrays = empty_batch(1, *self.stored_size)
        self._read(index, arrays, 0)
        img0, img1, flow = (array[0] for array in arrays)
        return resize_sample(img0, img1, flow, self.height, self.width)

    def read_into(self, indices: Sequence[int], arrays: Sequence[np.ndarray]) -> None:
        """Copy samples straight into ``arrays`` when the shards are at the training size."""
        if self.stored_size != (self.height, self.width):
            super().read_into(indices, arrays)
            return
        for position, index in enumerate(indices):
            self._read(int(index), arrays, position)

    def close(self) -> None:
        """Close every shard file this source opened."""
        with self._lock:
            self._files = {}  # the mappings close when their last view is dropped


# Every live ShardSource, so that a forked child drops the parent's open files and locks
# (an HDF5 handle must not cross a fork; a lock held by a parent thread would never be released).
_SHARD_SOURCES: "weakref.WeakSet[ShardSource]" = weakref.WeakSet()


def _forget_files_after_fork() -> None:
    for source in list(_SHARD_SOURCES):
        source._forget_files()


os.register_at_fork(after_in_child=_forget_files_after_fork)


def check_split_dirs(data_cfg: DataConfig) -> None:
    """DataError when data.train_dir and data.val_dir are one folder (validation would rank nothing)."""
    if data_cfg.source == "folders" and same_folder(Path(data_cfg.train_dir), Path(data_cfg.val_dir)):
        raise DataError(same_folder_message(Path(data_cfg.train_dir), Path(data_cfg.val_dir)))


def open_source(data_cfg: DataConfig, split: str, verify_sha256: bool = True) -> SampleSource:
    """The ``split`` ("train" or "val") of the source ``data_cfg.source`` names, at the training resolution.

    Train and val must be different folders holding different samples; shards are
    checked against their manifest's sha256 unless ``verify_sha256`` is False.
    """
    if split not in shards.SPLITS:
        raise ConfigError(f"split must be one of {shards.SPLITS}, got {split!r}")
    size = (data_cfg.input_height, data_cfg.input_width)
    if data_cfg.source == "folders":
        check_split_dirs(data_cfg)
        source = FolderSource(Path(getattr(data_cfg, f"{split}_dir")), split, *size)
        if split == "val":
            train_dir = Path(data_cfg.train_dir)
            shared = shared_samples(list_samples(train_dir), source.samples)
            if shared:
                raise DataError(shared_samples_message(train_dir, source.directory, shared))
        return source
    if data_cfg.source == "shards":
        if not data_cfg.shards_dir:
            raise ConfigError("data.shards_dir must be set when data.source is 'shards' (the --out of 'efnas pack')")
        return ShardSource(Path(data_cfg.shards_dir), split, *size, verify_sha256=verify_sha256)
    raise ConfigError(f"data.source must be 'folders' or 'shards', got {data_cfg.source!r}")


class BatchBuffers:
    """Batch arrays in buffers that are reused once nothing refers to the batch written in them any more.

    Each batch gets a new ctypes view of a free buffer as the base of its arrays;
    numpy keeps that base alive through every view of the arrays (views of views
    too), and its finalizer returns the buffer when the last one dies.  A batch
    the caller keeps therefore keeps its values; a new buffer is made when none is
    free.  Arrays start on 64-byte cache lines.
    """

    ALIGN = 64

    def __init__(self, batch_size: int, height: int, width: int) -> None:
        self.layout: List[Tuple[np.dtype, Tuple[int, ...], int]] = []  # dtype, shape, byte offset of each array
        offset = 0
        for dtype, channels in shards.ARRAYS.values():
            shape = (batch_size, height, width, channels)
            self.layout.append((np.dtype(dtype), shape, offset))
            offset += -(-int(np.prod(shape)) * np.dtype(dtype).itemsize // self.ALIGN) * self.ALIGN
        self.nbytes = offset
        self.made = 0  # buffers allocated so far
        self._free: Deque[np.ndarray] = deque()  # append and pop are atomic: finalizers run in any thread

    def take(self, count: int) -> Tuple[np.ndarray, ...]:
        """img0, img1, flow arrays for ``count`` (<= batch_size) samples, in a buffer no live batch uses."""
        try:
            memory = self._free.pop()
        except IndexError:
            memory = np.empty(self.nbytes + self.ALIGN, np.uint8)
            self.made += 1
        owner = (ctypes.c_char * self.nbytes).from_buffer(memory, -memory.ctypes.data % self.ALIGN)
        weakref.finalize(owner, self._free.append, memory).atexit = False
        return tuple(np.frombuffer(owner, dtype, int(np.prod(shape)), offset).reshape(shape)[:count]
                     for dtype, shape, offset in self.layout)


AUTO_WORKERS = "auto"
# Most threads ``auto`` gives a folder source (PNG decoding): more only compete with training for the CPUs.
MAX_AUTO_FOLDER_WORKERS = 4


def worker_count(setting, source: "SampleSource") -> int:
    """Loader threads for ``data.num_workers`` (an int, or ``auto``) on ``source``.

    ``auto``: none for shards and in-memory sources, where a read is a memory-bound copy (about 1 ms per
    batch of 16 at 180x240) that threads do not speed up (``benchmarks/bench_loader.py``: 2 threads read
    0.86-1.2x one thread) and have nothing to overlap; one per CPU, at most 4, for folders, where decoding
    PNGs is compute-bound (2 threads read 2x one).
    """
    if setting != AUTO_WORKERS:
        return int(setting)
    if isinstance(source, FolderSource):
        return min(MAX_AUTO_FOLDER_WORKERS, os.cpu_count() or 1)
    return 0


class BatchLoader:
    """Batches of a source: order = f(seed, epoch), exact resume by batch index, background prefetch."""

    def __init__(self, source: SampleSource, batch_size: int, seed: int, num_workers: int = 2,
                 prefetch_batches: int = 4, drop_last: bool = True) -> None:
        if batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
        self.source, self.batch_size, self.seed = source, batch_size, seed
        self.num_workers, self.prefetch_batches, self.drop_last = num_workers, max(1, prefetch_batches), drop_last
        if self.num_batches == 0:
            raise DataError(f"{getattr(source, 'directory', source)}: {len(source)} samples cannot fill one batch "
                            f"of {batch_size} (drop_last); lower the batch size or add samples")
        self._pool: Optional[ThreadPoolExecutor] = None
        self.buffers = BatchBuffers(batch_size, source.height, source.width)

    @property
    def num_batches(self) -> int:
        """Batches per epoch."""
        full, rest = divmod(len(self.source), self.batch_size)
        return full + (1 if rest and not self.drop_last else 0)

    def epoch_order(self, epoch: int) -> np.ndarray:
        """The permutation of sample indices for ``epoch``: a pure function of (seed, epoch)."""
        return np.random.default_rng((self.seed, epoch)).permutation(len(self.source))

    def batches(self, epoch: int, start_batch: int = 0) -> Iterator[Batch]:
        """Batches ``start_batch``..end of ``epoch``, loaded ahead by the worker threads."""
        if not 0 <= start_batch <= self.num_batches:
            raise DataError(f"start_batch {start_batch} is outside 0..{self.num_batches} for this epoch")
        order = self.epoch_order(epoch)
        chunks = (order[b * self.batch_size:(b + 1) * self.batch_size] for b in range(start_batch, self.num_batches))
        if self.num_workers == 0:
            yield from map(self._load, chunks)
            return
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.num_workers, thread_name_prefix="efnas-loader")
        ahead: Deque[Future] = deque()
        try:
            for indices in chunks:
                ahead.append(self._pool.submit(self._load, indices))
                if len(ahead) > self.prefetch_batches:
                    yield ahead.popleft().result()
            while ahead:
                yield ahead.popleft().result()
        finally:
            for future in ahead:
                future.cancel()

    def _load(self, indices: np.ndarray) -> Batch:
        arrays = self.buffers.take(len(indices))
        self.source.read_into(indices, arrays)
        for array in arrays:  # a batch is never changed after this (the trainer's staging relies on it)
            array.flags.writeable = False
        return Batch(*arrays, ids=tuple(self.source.sample_ids[int(index)] for index in indices))

    def close(self) -> None:
        """Stop the worker threads (the source stays open; close it separately)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def __enter__(self) -> "BatchLoader":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

"""Loader throughput at the training resolution: FC2 folders vs HDF5 shards vs the raw-bytes limit.

Writes a synthetic FC2 set with ``efnas synth`` into a temp dir (200 train
samples at 384x512 by default), packs it at 180x240, then times full epochs
of ``BatchLoader`` over sources holding the same samples:

- folders:   PNG + .flo decoded and resized on every read (FolderSource)
- shards:    HDF5 chunks read with their fletcher32 checksums (ShardSource)
- raw_bytes: the very same sample bytes already in memory, gathered into
             batches (the limit any storage format can reach)
- shards_unchecked (diagnostic): the shards' chunks read raw, skipping the
             checksum, to show what the fletcher32 verification costs

Two columns: ``inline`` (num_workers=0, the source's own cost in one thread)
and ``loader`` (``--workers`` prefetch threads, as in training).  Each figure
is the best of ``--repeats`` epochs because the machine may be shared.
Targets (Data issue): shards >= 20x folders and shards >= 0.5x raw_bytes.

    python benchmarks/bench_loader.py [--samples 200] [--workers 2] [--batch_size 16]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, Sequence

import numpy as np

from edgeflownas.data.loader import Batch, BatchLoader, FolderSource, SampleSource, ShardSource, empty_batch
from edgeflownas.data.pack import pack
from edgeflownas.data.shards import ARRAYS, open_shard
from edgeflownas.data.synth import write_dataset

HEIGHT, WIDTH = 180, 240
TARGET_VS_FOLDERS = 20.0
TARGET_VS_RAW = 0.5


class MemorySource(SampleSource):
    """The samples of another source, held in memory as contiguous arrays (the raw-bytes limit)."""

    def __init__(self, source: SampleSource) -> None:
        self.height, self.width, self.sample_ids = source.height, source.width, list(source.sample_ids)
        everything = source.get_batch(range(len(source)))
        self.arrays = (everything.img0, everything.img1, everything.flow)

    def get_batch(self, indices: Sequence[int]) -> Batch:
        indices = np.asarray(indices)
        return Batch(*(np.take(array, indices, axis=0) for array in self.arrays),
                     ids=tuple(self.sample_ids[i] for i in indices))


class UncheckedShardSource(ShardSource):
    """Diagnostic only: shard chunks read raw with read_direct_chunk, skipping the fletcher32 check."""

    def __init__(self, directory: Path, split: str, height: int, width: int) -> None:
        super().__init__(directory, split, height, width)
        self.raw_files = [open_shard(path) for path in self.paths]
        self.raw_datasets = [[handle[name].id for name in ARRAYS] for handle in self.raw_files]

    def get_batch(self, indices: Sequence[int]) -> Batch:
        arrays = empty_batch(len(indices), self.height, self.width)
        for position, index in enumerate(indices):
            shard, local = self.locate(int(index))
            offsets = (local, 0, 0, 0)
            for dataset, out in zip(self.raw_datasets[shard], arrays):
                _, chunk = dataset.read_direct_chunk(offsets)  # data + the 4 fletcher32 bytes, unchecked
                out[position] = np.frombuffer(chunk, out.dtype, count=out[position].size).reshape(out.shape[1:])
        return Batch(*arrays, ids=tuple(self.sample_ids[int(index)] for index in indices))


def samples_per_second(source: SampleSource, batch_size: int, workers: int, repeats: int) -> float:
    """Best epoch throughput of the training loader over ``source``."""
    best = 0.0
    with BatchLoader(source, batch_size, seed=0, num_workers=workers, prefetch_batches=4) as loader:
        for epoch in range(repeats):
            start = time.perf_counter()
            count = sum(len(batch.ids) for batch in loader.batches(epoch))
            best = max(best, count / (time.perf_counter() - start))
    return best


def verdict(value: float, target: float) -> str:
    return f"{value:8.2f}x{'' if value >= target else ' MISSED'}"


def run(samples: int, batch_size: int, workers: int, repeats: int, root: Path) -> Dict[str, Dict[str, float]]:
    """Build the data under ``root``, time the sources inline and through the loader, print the table."""
    write_dataset(root / "FC2", train=samples, val=batch_size, seed=0, workers=max(1, workers))
    pack(root / "FC2", root / "shards", height=HEIGHT, width=WIDTH, shard_size=100, workers=max(1, workers))
    shards = ShardSource(root / "shards", "train", HEIGHT, WIDTH)
    sources = {
        "folders": FolderSource(root / "FC2" / "train", "train", HEIGHT, WIDTH),
        "shards": shards,
        "raw_bytes": MemorySource(shards),
        "shards_unchecked*": UncheckedShardSource(root / "shards", "train", HEIGHT, WIDTH),
    }
    columns = {"inline": 0, "loader": workers}
    figures = {name: {column: samples_per_second(source, batch_size, column_workers,
                                                  max(2, repeats // 3) if name == "folders" else repeats)
                      for column, column_workers in columns.items()}
               for name, source in sources.items()}
    print(f"bench_loader: {samples} synthetic samples 384x512 -> {HEIGHT}x{WIDTH}, batch {batch_size}, "
          f"best epoch of {repeats} ({max(2, repeats // 3)} for folders); "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print(f"{'samples/s':<20}{'inline (0 workers)':>20}{f'loader ({workers} workers)':>22}")
    for name, row in figures.items():
        print(f"{name:<20}{row['inline']:>20.1f}{row['loader']:>22.1f}")
    for label, other, target in (("shards / folders", "folders", TARGET_VS_FOLDERS),
                                 ("shards / raw_bytes", "raw_bytes", TARGET_VS_RAW)):
        ratios = [verdict(figures["shards"][c] / figures[other][c], target) for c in columns]
        print(f"{label:<20}{ratios[0]:>20}{ratios[1]:>22}   target >= {target}x")
    print("* diagnostic, not a loader mode: raw chunk reads that skip the fletcher32 check the loader always does")
    return figures


def main(argv: Sequence[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=200, help="synthetic train samples (384x512)")
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2, help="loader worker threads for the 'loader' column")
    parser.add_argument("--repeats", type=int, default=6, help="epochs per source; the best is reported")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench_loader-") as tmp:
        run(args.samples, args.batch_size, args.workers, args.repeats, Path(tmp))


if __name__ == "__main__":
    main(sys.argv[1:])

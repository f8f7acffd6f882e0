"""Loader throughput at the training resolution: FC2 folders vs HDF5 shards vs the raw-bytes limit.

Writes a synthetic FC2 set with ``efnas synth`` into a temp dir (200 train
samples at 384x512 by default), packs it at 180x240, then times full epochs
of ``BatchLoader`` over sources holding the same samples:

- folders:   PNG + .flo decoded and resized on every read (FolderSource)
- shards:    samples copied from memory-mapped shard files and checked
             against their stored xxh3_64 hashes (ShardSource, format 2)
- raw_bytes: the very same sample bytes already in memory, gathered into
             batches (the limit any storage format can reach)
- shards_unhashed (diagnostic): the same copies without the hash check, to
             show what the verification costs

Two columns: ``inline`` (num_workers=0, the source's own cost in one thread)
and ``loader`` (``--workers`` prefetch threads, as in training).  Each figure
is the best of ``--repeats`` epochs because the machine may be shared.
Targets (issue 17): shards >= 20x folders and >= 0.6x raw_bytes (inline), and
the loader with 2 workers >= 1.6x inline on shards.  The last line is one JSON
object of the measured ratios and their targets, for tracking over time.

    python benchmarks/bench_loader.py [--samples 200] [--workers 2] [--batch_size 16]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, Sequence

import numpy as np

from edgeflownas.data.loader import Batch, BatchLoader, FolderSource, SampleSource, ShardSource
from edgeflownas.data.pack import pack
from edgeflownas.data.synth import write_dataset

HEIGHT, WIDTH = 180, 240
TARGETS = {"shards_vs_folders": 20.0, "shards_vs_raw_bytes": 0.6, "workers_vs_inline": 1.6}


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


class UnhashedShardSource(ShardSource):
    """Diagnostic only: the loader's copies from the memory-mapped shards without the xxh3_64 check."""

    def _read(self, index: int, outs: Sequence[np.ndarray], position: int) -> None:
        shard, local = self.locate(index)
        if shard not in self._files:
            self._files[shard] = self.layouts[shard].map()
        for view, out in zip(self._files[shard], outs):
            np.copyto(out[position], view[local])


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


def run(samples: int, batch_size: int, workers: int, repeats: int, root: Path) -> Dict[str, float]:
    """Build the data under ``root``, time the sources inline and through the loader, print the table."""
    write_dataset(root / "FC2", train=samples, val=batch_size, seed=0, workers=max(1, workers))
    pack(root / "FC2", root / "shards", height=HEIGHT, width=WIDTH, shard_size=100, workers=max(1, workers))
    shards = ShardSource(root / "shards", "train", HEIGHT, WIDTH)
    sources = {
        "folders": FolderSource(root / "FC2" / "train", "train", HEIGHT, WIDTH),
        "shards": shards,
        "raw_bytes": MemorySource(shards),
        "shards_unhashed*": UnhashedShardSource(root / "shards", "train", HEIGHT, WIDTH),
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
    ratios = {"shards_vs_folders": figures["shards"]["inline"] / figures["folders"]["inline"],
              "shards_vs_raw_bytes": figures["shards"]["inline"] / figures["raw_bytes"]["inline"],
              "workers_vs_inline": figures["shards"]["loader"] / figures["shards"]["inline"]}
    for label, other in (("shards / folders", "folders"), ("shards / raw_bytes", "raw_bytes")):
        both = [f"{figures['shards'][c] / figures[other][c]:8.2f}x" for c in columns]
        print(f"{label:<20}{both[0]:>20}{both[1]:>22}")
    for key, value in ratios.items():
        print(f"{key:<20}{verdict(value, TARGETS[key]):>20}   target >= {TARGETS[key]}x")
    print("* diagnostic, not a loader mode: the same reads without the xxh3_64 check the loader always does")
    return ratios


def main(argv: Sequence[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=200, help="synthetic train samples (384x512)")
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2, help="loader worker threads for the 'loader' column")
    parser.add_argument("--repeats", type=int, default=6, help="epochs per source; the best is reported")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench_loader-") as tmp:
        ratios = run(args.samples, args.batch_size, args.workers, args.repeats, Path(tmp))
    print(json.dumps({**{key: round(value, 3) for key, value in ratios.items()}, "targets": TARGETS}))


if __name__ == "__main__":
    main(sys.argv[1:])

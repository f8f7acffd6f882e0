"""What identifying a split by content costs at every training start, resume, eval and search.

Writes a synthetic FC2 split with ``efnas synth`` (``--samples`` pairs at
384x512, FC2's size) into a temp dir and times ``FolderSource.content_digest``
against the scan that opening the split already does (``scan_split``: every
file's header).  The digest has two parts: a stat of every file (grows with the
split, like the scan) and the bytes of CONTENT_SAMPLES samples (fixed, ~18 MB
at FC2's size).  Both the digest and the scan are extrapolated to FC2's 22,232
training pairs (per-sample parts linearly, the fixed read as measured).
Target: at FC2's size the digest costs at most 0.5x the scan, so a start is not
noticeably slower.  The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

from edgeflownas.data.loader import CONTENT_SAMPLES, FolderSource
from edgeflownas.data.scan import scan_split
from edgeflownas.data.synth import write_dataset

FC2_TRAIN = 22232
TARGET = 0.5


def best_of(repeats: int, work) -> float:
    """The fastest of ``repeats`` timings of ``work()`` (the machine may be shared)."""
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        work()
        best = min(best, time.perf_counter() - started)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="efnas_bench_identity_") as scratch:
        root = Path(scratch) / "fc2"
        write_dataset(root, train=args.samples, val=0, seed=0, height=384, width=512)
        split = root / "train"
        source = FolderSource(split, "train", 180, 240)
        sampled = sum(os.stat(p).st_size for s in source.samples[:CONTENT_SAMPLES] for p in (s.img0, s.img1, s.flow))
        digest = best_of(args.repeats, source.content_digest)
        stats = best_of(args.repeats, lambda: [os.stat(p) for s in source.samples for p in (s.img0, s.img1, s.flow)])
        scan = best_of(args.repeats, lambda: scan_split(split))
    load = os.getloadavg()[0]
    fixed = max(digest - stats, 0.0)
    digest_fc2 = stats / args.samples * FC2_TRAIN + fixed
    scan_fc2 = scan / args.samples * FC2_TRAIN
    ratio = digest_fc2 / scan_fc2
    print(f"load average {load:.2f}; {args.samples} samples at 384x512, {CONTENT_SAMPLES} read whole "
          f"(~{sampled / 1e6:.1f} MB)")
    print(f"measured: content_digest {digest * 1e3:.1f} ms (stats {stats * 1e3:.1f} ms + fixed read and hash "
          f"{fixed * 1e3:.1f} ms), scan_split {scan * 1e3:.1f} ms")
    print(f"at FC2 train size ({FC2_TRAIN} pairs): content_digest ~{digest_fc2:.2f} s, scan_split ~{scan_fc2:.2f} s: "
          f"{ratio:.2f}x the scan (target <= {TARGET}x)")
    print(json.dumps({"samples": args.samples, "digest_ms": round(digest * 1e3, 2), "stats_ms": round(stats * 1e3, 2),
                      "scan_ms": round(scan * 1e3, 2), "fc2_digest_s": round(digest_fc2, 3),
                      "fc2_scan_s": round(scan_fc2, 3), "fc2_digest_vs_scan": round(ratio, 3),
                      "target_digest_vs_scan": TARGET, "load_average": round(load, 2)}))


if __name__ == "__main__":
    main()

"""Scan one FC2 split folder: find every sample and every bad sample.

A sample is the triplet ``NNNNNNN-img_0.png``, ``NNNNNNN-img_1.png``,
``NNNNNNN-flow_01.flo`` in the split directory itself (other FC2 files such as
``flow_10``, ``occ_*``, ``mb_*``, ``oids_*`` and ``*.pfm`` are ignored).  The
quick scan checks existence, the PNG IHDR header and the ``.flo`` header and
size; the deep scan decodes everything in parallel worker processes.  Every bad
sample is kept with its reason: nothing is skipped silently.
"""

from __future__ import annotations

import filecmp
import os
import re
from collections import Counter
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

from edgeflownas.data.io import read_flo, read_flo_header, read_image_rgb, read_png_size, require_finite_flow
from edgeflownas.errors import DataError, EmptySplitError

SAMPLE_PATTERN = "NNNNNNN-img_0.png + NNNNNNN-img_1.png + NNNNNNN-flow_01.flo"
PARTS = ("img_0.png", "img_1.png", "flow_01.flo")
_SAMPLE_FILE = re.compile(r"^(\d{7})-(img_0\.png|img_1\.png|flow_01\.flo)$")

MISSING_PARTNER = "missing_partner"
UNREADABLE_IMAGE = "unreadable_image"
BAD_FLO = "bad_flo"
FLOW_SIZE_MISMATCH = "flow_size_mismatch"
INCONSISTENT_IMAGE_SIZE = "inconsistent_image_size"
REASONS = (MISSING_PARTNER, UNREADABLE_IMAGE, BAD_FLO, FLOW_SIZE_MISMATCH, INCONSISTENT_IMAGE_SIZE)

Size = Tuple[int, int]
QUICK_SCAN_THREADS = 8


@dataclass(frozen=True)
class Sample:
    """One complete FC2 triplet."""

    sample_id: str
    img0: Path
    img1: Path
    flow: Path


@dataclass(frozen=True)
class BadSample:
    """A sample that cannot be used, with the first problem found."""

    sample_id: str
    reason: str
    path: Path
    detail: str


@dataclass
class SplitScan:
    """Result of scanning one split folder: good samples (sorted by id) and bad ones."""

    directory: Path
    deep: bool
    samples: List[Sample] = field(default_factory=list)
    bad: List[BadSample] = field(default_factory=list)
    image_size: Optional[Size] = None
    ignored_files: int = 0

    def bad_by_reason(self) -> Dict[str, List[BadSample]]:
        """Bad samples grouped by reason, in the order of REASONS."""
        groups: Dict[str, List[BadSample]] = {reason: [] for reason in REASONS}
        for bad in self.bad:
            groups[bad.reason].append(bad)
        return {reason: items for reason, items in groups.items() if items}


@dataclass(frozen=True)
class SampleCheck:
    """Outcome of checking one complete triplet: its image size, or why it is bad."""

    sample: Sample
    size: Optional[Size]
    bad: Optional[BadSample]


def default_workers() -> int:
    """Worker processes for the deep scan: the CPUs this process may use."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def _list_split(directory: Path) -> Tuple[Dict[str, Dict[str, Path]], int]:
    """Group the split's sample files by id; also count the files that are not sample files."""
    if not directory.exists():
        raise DataError(f"{directory}: directory does not exist (expected an FC2 split folder of {SAMPLE_PATTERN})")
    if not directory.is_dir():
        raise DataError(f"{directory}: is not a directory (expected an FC2 split folder of {SAMPLE_PATTERN})")
    parts_by_id: Dict[str, Dict[str, Path]] = {}
    ignored = 0
    with os.scandir(directory) as entries:
        for entry in entries:
            match = _SAMPLE_FILE.match(entry.name)
            if match is None:
                ignored += 1
                continue
            parts_by_id.setdefault(match.group(1), {})[match.group(2)] = Path(entry.path)
    return parts_by_id, ignored


def _triplet(directory: Path, sample_id: str, parts: Dict[str, Path]) -> Tuple[Optional[Sample], Optional[BadSample]]:
    """A Sample when all three files exist, else a missing_partner BadSample."""
    missing = [part for part in PARTS if part not in parts]
    if missing:
        found = ", ".join(part for part in PARTS if part in parts)
        path = directory / f"{sample_id}-{missing[0]}"
        detail = f"{path}: missing {', '.join(missing)} (found only {found})"
        return None, BadSample(sample_id, MISSING_PARTNER, path, detail)
    img0, img1, flow = (parts[part] for part in PARTS)
    return Sample(sample_id, img0, img1, flow), None


def list_samples(directory: Path) -> List[Sample]:
    """The complete triplets of a split folder, sorted by id, without reading any file."""
    parts_by_id, _ = _list_split(Path(directory))
    triplets = (_triplet(Path(directory), sample_id, parts_by_id[sample_id])[0] for sample_id in sorted(parts_by_id))
    return [sample for sample in triplets if sample is not None]


def same_folder(first: Path, second: Path) -> bool:
    """Whether two paths name one existing folder (also through symlinks or relative paths)."""
    try:
        return os.path.samefile(first, second)
    except OSError:  # a missing folder is reported by the scan that needs it
        return False


def same_folder_message(train_dir: Path, val_dir: Path) -> str:
    """Why train and val must not be one folder."""
    return (f"train and val are the same folder ({train_dir} and {val_dir}): validating on the training samples "
            "ranks nothing; point data.val_dir (--val_dir) at the FC2 'val' folder")


def shared_samples(train: Sequence[Sample], val: Sequence[Sample]) -> List[str]:
    """Ids of val samples whose three files are byte-identical to the train sample with the same id."""
    by_id = {sample.sample_id: sample for sample in train}
    shared = []
    for sample in val:
        twin = by_id.get(sample.sample_id)
        pairs = [] if twin is None else list(zip((sample.img0, sample.img1, sample.flow),
                                                 (twin.img0, twin.img1, twin.flow)))
        # Sizes first: different samples almost always differ in PNG size, so contents are rarely read.
        if pairs and all(a.stat().st_size == b.stat().st_size for a, b in pairs) and all(
                filecmp.cmp(a, b, shallow=False) for a, b in pairs):
            shared.append(sample.sample_id)
    return shared


def shared_samples_message(train_dir: Path, val_dir: Path, shared: Sequence[str]) -> str:
    """Why samples copied into both splits are refused."""
    return (f"{len(shared)} samples of {val_dir} are byte-identical copies of the train samples with the same id "
            f"in {train_dir} (first: {shared[0]}): validating on training samples ranks nothing; remove them "
            "from one of the splits")


def _hw(size: Size) -> str:
    return f"{size[0]}x{size[1]} (HxW)"


def _image_size_deep(path: Path) -> Size:
    return read_image_rgb(path).shape[:2]


def _flow_size_deep(path: Path) -> Size:
    flow = read_flo(path)
    require_finite_flow(path, flow)
    return flow.shape[:2]


def check_sample(sample: Sample, deep: bool = False) -> SampleCheck:
    """Check one triplet (headers, or full decode when deep) and its internal sizes."""
    image_size: Callable[[Path], Size] = _image_size_deep if deep else read_png_size
    flow_size: Callable[[Path], Size] = _flow_size_deep if deep else read_flo_header
    probes = ((sample.img0, UNREADABLE_IMAGE, image_size), (sample.img1, UNREADABLE_IMAGE, image_size),
              (sample.flow, BAD_FLO, flow_size))
    sizes = []
    for path, reason, probe in probes:
        try:
            sizes.append(probe(path))
        except DataError as error:
            return SampleCheck(sample, None, BadSample(sample.sample_id, reason, path, str(error)))
    size0, size1, flow_size_found = sizes
    if size1 != size0:
        detail = f"{sample.img1}: image is {_hw(size1)} but {sample.img0.name} is {_hw(size0)}"
        return SampleCheck(sample, None, BadSample(sample.sample_id, INCONSISTENT_IMAGE_SIZE, sample.img1, detail))
    if flow_size_found != size0:
        detail = f"{sample.flow}: flow is {_hw(flow_size_found)} but the images are {_hw(size0)}"
        return SampleCheck(sample, None, BadSample(sample.sample_id, FLOW_SIZE_MISMATCH, sample.flow, detail))
    return SampleCheck(sample, size0, None)


def _check_deep(sample: Sample) -> SampleCheck:
    return check_sample(sample, deep=True)


def _check_all(samples: List[Sample], deep: bool, workers: int, progress: bool) -> Iterator[SampleCheck]:
    """Check samples in order: header reads on threads, deep decodes in worker processes."""
    from tqdm import tqdm

    bar = dict(total=len(samples), unit="sample", disable=not progress, leave=False)
    if not deep:
        # Header reads wait on the file system, not the CPU: threads overlap that latency.
        with ThreadPoolExecutor(max_workers=QUICK_SCAN_THREADS) as pool:
            yield from tqdm(pool.map(check_sample, samples), **bar)
    elif workers <= 1 or len(samples) < 2:
        yield from tqdm((check_sample(s, deep=True) for s in samples), **bar)
    else:
        chunksize = max(1, min(64, len(samples) // (workers * 8)))
        with ProcessPoolExecutor(max_workers=workers) as pool:
            yield from tqdm(pool.map(_check_deep, samples, chunksize=chunksize), **bar)


def majority_size(sizes: Iterable[Size]) -> Optional[Size]:
    """Most frequent (height, width); a tie goes to the size seen first."""
    counts = Counter(sizes)
    return counts.most_common(1)[0][0] if counts else None


def scan_split(directory: Path, deep: bool = False, workers: Optional[int] = None, progress: bool = False) -> SplitScan:
    """Scan one FC2 split folder; return good samples and every bad sample with its reason."""
    directory = Path(directory)
    parts_by_id, ignored = _list_split(directory)
    scan = SplitScan(directory=directory, deep=deep, ignored_files=ignored)
    candidates = []
    for sample_id in sorted(parts_by_id):
        sample, bad = _triplet(directory, sample_id, parts_by_id[sample_id])
        if bad is not None:
            scan.bad.append(bad)
        else:
            candidates.append(sample)
    checked = list(_check_all(candidates, deep, workers if workers is not None else default_workers(), progress))
    scan.bad.extend(c.bad for c in checked if c.bad is not None)
    good = [c for c in checked if c.bad is None]
    scan.image_size = majority_size(c.size for c in good)
    for c in good:
        if c.size == scan.image_size:
            scan.samples.append(c.sample)
        else:
            detail = (f"{c.sample.img0}: images are {_hw(c.size)} but most samples of {directory} "
                      f"are {_hw(scan.image_size)}")
            scan.bad.append(BadSample(c.sample.sample_id, INCONSISTENT_IMAGE_SIZE, c.sample.img0, detail))
    scan.bad.sort(key=lambda bad: bad.sample_id)
    return scan


def empty_split_message(scan: SplitScan, split: str) -> Optional[str]:
    """Why a split has no usable sample (never silently an empty split), or None if it has some."""
    if scan.samples:
        return None
    found = f"{len(scan.bad)} bad samples and {scan.ignored_files} other files" if scan.bad else (
        f"{scan.ignored_files} files, none of them a sample file")
    return (f"{split} split is empty: no usable sample matching {SAMPLE_PATTERN} in {scan.directory} "
            f"(found {found}); point data.{split}_dir (or --{split}_dir) at an FC2 '{split}' folder "
            f"(for efnas pack: --src at the FC2 root holding it)")


def require_samples(scan: SplitScan, split: str) -> None:
    """Raise EmptySplitError when a split has no usable sample."""
    message = empty_split_message(scan, split)
    if message is not None:
        raise EmptySplitError(message)

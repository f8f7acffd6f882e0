"""``efnas data-check`` as a library: scan the splits, judge them, report.

The report is a plain dict (written as JSON) holding every bad sample, so a
check never loses information; the printed table shows counts per reason with
a few example paths.  A split with no usable sample and more bad samples than
``max_bad`` are failures: the CLI exits non-zero after printing and writing
everything.
"""

from __future__ import annotations

import functools
import json
import importlib.util
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Dict, List, Mapping, Optional

from edgeflownas.atomic_io import write_json_atomic
from edgeflownas.config import resolve, shipped_file
from edgeflownas.data.scan import (
    SAMPLE_PATTERN, SplitScan, empty_split_message, same_folder, same_folder_message, scan_split, shared_samples,
    shared_samples_message,
)
from edgeflownas.data.shards import verify_shards
from edgeflownas.errors import ConfigError, DataError

REPORT_FORMAT = "efnas-data-check/1"
EXAMPLES_PER_REASON = 3
LIST_TOOL = "tools/data_check/check_fc2_lists.py"


def check_splits(directories: Mapping[str, Path], deep: bool = False, workers: Optional[int] = None,
                 progress: bool = False) -> Dict[str, SplitScan]:
    """Scan each named split folder (e.g. {"train": ..., "val": ...})."""
    scans = {}
    for split, directory in directories.items():
        try:
            scans[split] = scan_split(Path(directory), deep=deep, workers=workers, progress=progress)
        except DataError as error:
            raise DataError(f"{split} split: {error}") from None
    return scans


def overlap_problems(scans: Mapping[str, SplitScan]) -> List[str]:
    """Train and val that are one folder, or that hold byte-identical copies of the same samples."""
    if not {"train", "val"} <= set(scans):
        return []
    train, val = scans["train"], scans["val"]
    if same_folder(train.directory, val.directory):
        return [same_folder_message(train.directory, val.directory)]
    shared = shared_samples(train.samples, val.samples)
    return [shared_samples_message(train.directory, val.directory, shared)] if shared else []


def failures(scans: Mapping[str, SplitScan], max_bad: int = 0) -> List[str]:
    """Why the check fails: empty or overlapping splits, then too many bad samples; empty list when it passes."""
    messages = [empty_split_message(scan, split) for split, scan in scans.items()]
    problems = [message for message in messages if message is not None] + overlap_problems(scans)
    bad = {split: len(scan.bad) for split, scan in scans.items()}
    if sum(bad.values()) > max_bad:
        per_split = ", ".join(f"{split}: {count}" for split, count in bad.items())
        problems.append(f"{sum(bad.values())} bad samples ({per_split}) exceed --max_bad {max_bad}; "
                        "fix or remove them (the table and the JSON report list each one)")
    return problems


def _split_report(scan: SplitScan) -> Dict[str, object]:
    """JSON-ready summary of one split, with every bad sample."""
    by_reason = {
        reason: {"count": len(items),
                 "examples": [str(item.path) for item in items[:EXAMPLES_PER_REASON]]}
        for reason, items in scan.bad_by_reason().items()
    }
    return {
        "directory": str(scan.directory),
        "pattern": SAMPLE_PATTERN,
        "samples": len(scan.samples),
        "bad": len(scan.bad),
        "image_size": list(scan.image_size) if scan.image_size else None,
        "ignored_files": scan.ignored_files,
        "bad_by_reason": by_reason,
        "bad_samples": [{"sample_id": b.sample_id, "reason": b.reason, "path": str(b.path), "detail": b.detail}
                        for b in scan.bad],
    }


def build_report(scans: Mapping[str, SplitScan], max_bad: int = 0, deep: bool = False) -> Dict[str, object]:
    """The full data-check report: per-split counts, every bad sample, and the verdict."""
    problems = failures(scans, max_bad)
    return {
        "format": REPORT_FORMAT,
        "mode": "deep" if deep else "quick",
        "max_bad": max_bad,
        **{f"{split}_samples": len(scan.samples) for split, scan in scans.items()},
        "splits": {split: _split_report(scan) for split, scan in scans.items()},
        "failures": problems,
        "ok": not problems,
    }


def format_report(report: Mapping[str, object]) -> str:
    """Sample counts, then a table of bad samples by reason with example paths."""
    splits = report["splits"]
    lines = [f"{split}_samples: {info['samples']}" for split, info in splits.items()]
    for split, info in splits.items():
        size = "x".join(map(str, info["image_size"])) if info["image_size"] else "-"
        lines.append(f"{split}: {info['directory']} ({report['mode']} scan, image size {size} HxW, "
                     f"{info['bad']} bad, {info['ignored_files']} other files ignored)")
    rows = [(split, reason, entry) for split, info in splits.items() for reason, entry in info["bad_by_reason"].items()]
    if rows:
        lines.append(f"{'split':<6} {'reason':<24} {'count':>6}  example paths")
        for split, reason, entry in rows:
            examples = entry["examples"]
            lines.append(f"{split:<6} {reason:<24} {entry['count']:>6}  {examples[0]}")
            lines.extend(f"{'':<39}{example}" for example in examples[1:])
    else:
        lines.append("bad samples: 0")
    return "\n".join(lines)


def write_report(report: Mapping[str, object], path: Path) -> None:
    """Write the report as JSON (atomically)."""
    write_json_atomic(Path(path), dict(report))


@functools.lru_cache(maxsize=None)
def load_list_tool() -> ModuleType:
    """Import tools/data_check/check_fc2_lists.py (package data), the single home of the legacy list audit."""
    path = shipped_file(LIST_TOOL)
    spec = importlib.util.spec_from_file_location("efnas_check_fc2_lists", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def audit_legacy_lists(lists_dir: Path, base_path: Optional[Path] = None) -> Dict[str, object]:
    """Run the legacy list audit; its own errors become DataError naming the file."""
    tool = load_list_tool()
    try:
        report = tool.audit_lists(Path(lists_dir), base_path)
    except tool.ListFileError as error:
        raise DataError(str(error)) from None
    report["ok"] = tool.audit_ok(report)
    return report


def format_legacy_lists(report: Mapping[str, object]) -> str:
    """The legacy list audit's evidence table: list entries against the files on disk."""
    return load_list_tool().format_report(report)


@dataclass(frozen=True)
class CheckRequest:
    """What ``efnas data-check`` checks: split folders, legacy list files, a packed set (any of them)."""

    directories: Mapping[str, Path] = field(default_factory=dict)
    lists_dir: Optional[Path] = None
    lists_base: Optional[Path] = None
    shards_dir: Optional[Path] = None
    deep: bool = False
    workers: Optional[int] = None
    max_bad: int = 0


@dataclass(frozen=True)
class CheckResult:
    """The written report, the printable sections in order, and every reason the check fails."""

    report: Dict[str, object]
    sections: List[str]
    problems: List[str]

    @property
    def ok(self) -> bool:
        """True when nothing failed."""
        return not self.problems


def split_directories(config: Optional[Path], train_dir: Optional[Path],
                      val_dir: Optional[Path]) -> Dict[str, Path]:
    """Split folders to scan: --train_dir/--val_dir win over data.train_dir/val_dir of --config."""
    directories: Dict[str, Path] = {}
    if config is not None:
        data = resolve(config).config.data
        directories = {"train": Path(data.train_dir), "val": Path(data.val_dir)}
    if train_dir is not None:
        directories["train"] = train_dir
    if val_dir is not None:
        directories["val"] = val_dir
    return directories


def check_request(request: CheckRequest) -> None:
    """Refuse a request with nothing to check, or with one split folder only."""
    if not request.directories and request.lists_dir is None and request.shards_dir is None:
        raise ConfigError("data-check needs --config FILE, --train_dir/--val_dir DIR, --lists DIR or --shards_dir DIR")
    given = request.directories
    missing = [f"--{split}_dir" for split in ("train", "val") if given and split not in given]
    if missing:
        raise ConfigError(f"data-check checks both splits: {' and '.join(missing)} is missing "
                          "(or pass --config FILE for data.train_dir and data.val_dir)")


def is_report(path: Path) -> bool:
    """Whether ``path`` holds a data-check report (which a new check may replace without --overwrite)."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8")).get("format") == REPORT_FORMAT
    except (OSError, ValueError, AttributeError):
        return False


def check_report_path(report: Path) -> None:
    """Refuse a report path that cannot become a file before scanning for minutes (and before any temp file exists)."""
    if report.is_dir():
        raise ConfigError(f"--out {report} is a folder: pass a file path such as {report / 'data_check_report.json'}")
    for parent in report.parents:
        if parent.exists() and not parent.is_dir():
            raise ConfigError(f"--out {report}: {parent} is a file, not a folder: pass a path inside a folder")


def run_data_check(request: CheckRequest, report_path: Path, progress: bool = False) -> CheckResult:
    """Check everything the request names and write the JSON report (pass or fail); the caller prints and exits."""
    check_report_path(report_path)
    check_request(request)
    report: Dict[str, object] = {"format": REPORT_FORMAT}
    sections: List[str] = []
    problems: List[str] = []
    if request.directories:
        try:
            scans = check_splits(request.directories, deep=request.deep, workers=request.workers, progress=progress)
        except DataError as error:  # a split folder is missing or unreadable: reported like any failure
            problems.append(str(error))
        else:
            report = build_report(scans, max_bad=request.max_bad, deep=request.deep)
            sections.append(format_report(report))
            problems += report["failures"]
    if request.lists_dir is not None:
        legacy = audit_legacy_lists(request.lists_dir, request.lists_base)
        sections.append(format_legacy_lists(legacy))
        report["legacy_lists"] = legacy
        if not legacy["ok"]:
            problems.append(f"legacy lists in {request.lists_dir} reference missing or out-of-range samples "
                            "(table above)")
    if request.shards_dir is not None:
        verified = verify_shards(request.shards_dir, progress=progress)
        sections.append(verified.format())
        report["shards"] = {"directory": str(request.shards_dir), "samples": verified.samples,
                            "problems": verified.problems}
        if not verified.ok:
            problems.append(f"{len(verified.problems)} problems in the packed set {request.shards_dir} (listed above)")
    report = dict(report, ok=not problems, failures=problems)
    write_report(report, report_path)
    return CheckResult(report, sections, problems)

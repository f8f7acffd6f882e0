#!/usr/bin/env python3
"""Audit EdgeFlowNet's legacy FC2 list files against the data on disk.

Stand-alone on purpose (standard library only, no efnas import): it runs on a
login node before anything is installed.  ``efnas data-check --lists DIR``
loads this same file, so the logic lives only here.

Format (pearwpi/EdgeFlowNet, code/dataset_paths/ and misc/DataHandling.py):
``FC2_dirnames.txt`` lists the ``img_0.png`` path of every sample, separated by
whitespace (upstream they look like ``/Datasets/FlyingChairs2/train/0000014-img_0.png``);
``FC2_train.txt``, ``FC2_val.txt`` and ``FC2_test.txt`` list 0-based indices
into it.  EdgeFlowNet derives the partners by renaming ``img_0`` to ``img_1``
and ``img_0.png`` to ``flow_01.flo``.  Upstream ships no ``FC2_val.txt``; an
absent split file is reported as absent, not as an error.

Entries resolve as absolute paths (EdgeFlowNet prefixes ``os.sep``), or, with
``--base_path DIR``, relative to DIR after stripping the leading separator.

Exit status: 0 when every entry and index resolves to an existing ``img_0``,
1 when some do not (the table says which split they belong to), 2 when a list
file is missing or malformed.

Usage: python tools/data_check/check_fc2_lists.py LISTS_DIR [--base_path DIR] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections import Counter
from pathlib import Path
from typing import Dict, List, Optional, Sequence

DIRNAMES_FILE = "FC2_dirnames.txt"
SPLIT_FILES = {"train": "FC2_train.txt", "val": "FC2_val.txt", "test": "FC2_test.txt"}
EXAMPLES = 5


class ListFileError(Exception):
    """A list file is missing or malformed (the message names the file)."""


def read_dirnames(path: Path) -> List[str]:
    """The whitespace-separated img_0 paths of FC2_dirnames.txt."""
    try:
        entries = Path(path).read_text(encoding="utf-8").split()
    except OSError as exc:
        raise ListFileError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    if not entries:
        raise ListFileError(f"{path}: holds no entries, expected one img_0.png path per line")
    return entries


def read_indices(path: Path) -> List[int]:
    """The whitespace-separated 0-based indices of a split file."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ListFileError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    indices = []
    for number, line in enumerate(text.splitlines(), start=1):
        for token in line.split():
            if not token.lstrip("-").isdigit():
                raise ListFileError(f"{path}: line {number} holds {token!r}, expected an integer index")
            indices.append(int(token))
    return indices


def resolve_entry(entry: str, base_path: Optional[Path]) -> Path:
    """Where a dirnames entry points: under base_path if given, else as an absolute path."""
    if base_path is not None:
        return Path(base_path) / entry.lstrip("/\\")
    return Path(entry if os.path.isabs(entry) else os.sep + entry)


def partner_paths(img0: Path) -> List[Path]:
    """img_1 and flow_01 paths derived from an img_0 path, as EdgeFlowNet does (file name only)."""
    return [img0.with_name(img0.name.replace("img_0", "img_1")),
            img0.with_name(img0.name.replace("img_0.png", "flow_01.flo"))]


def _entry_status(entries: Sequence[str], base_path: Optional[Path]) -> List[Dict[str, object]]:
    """Existence of img_0 and of the full triplet, once per dirnames entry."""
    status = []
    for entry in entries:
        img0 = resolve_entry(entry, base_path)
        img0_exists = img0.is_file()
        triplet = img0_exists and all(p.is_file() for p in partner_paths(img0))
        status.append({"path": str(img0), "img0": img0_exists, "triplet": triplet})
    return status


def _summary(selected: List[Dict[str, object]], total: int, out_of_range: int) -> Dict[str, object]:
    """Counts for a set of entries, plus the folders they point to and a few missing examples."""
    missing = [s["path"] for s in selected if not s["img0"]]
    folders = Counter(str(Path(str(s["path"])).parent) for s in selected)
    return {
        "total_entries": total,
        "out_of_range": out_of_range,
        "img0_exists": len(selected) - len(missing),
        "missing_img0": len(missing),
        "triplet_exists": sum(1 for s in selected if s["triplet"]),
        "folders": dict(folders.most_common(3)),
        "missing_examples": missing[:EXAMPLES],
    }


def audit_lists(lists_dir: Path, base_path: Optional[Path] = None) -> Dict[str, object]:
    """Audit FC2_dirnames.txt and the split index files of lists_dir against disk."""
    lists_dir = Path(lists_dir)
    if not lists_dir.is_dir():
        raise ListFileError(f"{lists_dir}: list directory does not exist")
    dirnames_path = lists_dir / DIRNAMES_FILE
    if not dirnames_path.is_file():
        raise ListFileError(f"{dirnames_path}: missing, every split file indexes into it")
    entries = read_dirnames(dirnames_path)
    status = _entry_status(entries, base_path)
    report: Dict[str, object] = {
        "lists_dir": str(lists_dir),
        "base_path": str(base_path) if base_path is not None else None,
        DIRNAMES_FILE: _summary(status, len(entries), 0),
        "splits": {},
    }
    referenced_by: Dict[int, str] = {}
    for split, name in SPLIT_FILES.items():
        path = lists_dir / name
        if not path.is_file():
            report["splits"][split] = {"file": name, "present": False}
            continue
        indices = read_indices(path)
        in_range = [i for i in indices if 0 <= i < len(entries)]
        for i in in_range:
            referenced_by.setdefault(i, split)
        summary = _summary([status[i] for i in in_range], len(indices), len(indices) - len(in_range))
        report["splits"][split] = {"file": name, "present": True, **summary}
    missing = [i for i, s in enumerate(status) if not s["img0"]]
    by_split = Counter(referenced_by.get(i, "unreferenced") for i in missing)
    report["missing_img0_by_split"] = {key: by_split.get(key, 0) for key in (*SPLIT_FILES, "unreferenced")}
    return report


def audit_ok(report: Dict[str, object]) -> bool:
    """True when every entry and every in-range index points to an existing img_0 and no index is out of range."""
    splits = [s for s in report["splits"].values() if s["present"]]
    return report[DIRNAMES_FILE]["missing_img0"] == 0 and all(
        s["missing_img0"] == 0 and s["out_of_range"] == 0 for s in splits)


def format_report(report: Dict[str, object]) -> str:
    """The evidence table: per list file, entries, img0 found / missing, and where the missing ones belong."""
    columns = ("total_entries", "img0_exists", "missing_img0", "triplet_exists", "out_of_range")
    lines = [f"lists_dir: {report['lists_dir']}", f"base_path: {report['base_path'] or '(entries used as absolute paths)'}",
             f"{'file':<18}" + "".join(f"{c:>16}" for c in columns)]
    rows = [(DIRNAMES_FILE, report[DIRNAMES_FILE])] + [(s["file"], s) for s in report["splits"].values()]
    for name, row in rows:
        if row.get("present", True):
            lines.append(f"{name:<18}" + "".join(f"{row[c]:>16}" for c in columns))
        else:
            lines.append(f"{name:<18}{'(file absent)':>16}")
    by_split = ", ".join(f"{k}={v}" for k, v in report["missing_img0_by_split"].items())
    lines.append(f"missing img0 entries of {DIRNAMES_FILE} by split: {by_split}")
    for name, row in rows:
        if row.get("present", True) and row["total_entries"]:
            folders = ", ".join(f"{folder} ({count})" for folder, count in row["folders"].items())
            lines.append(f"{name} entries point into: {folders}")
            for example in row["missing_examples"]:
                lines.append(f"  missing: {example}")
    return "\n".join(lines)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Command-line entry point; returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("lists_dir", type=Path, help="directory holding FC2_dirnames.txt and FC2_{train,val,test}.txt")
    parser.add_argument("--base_path", type=Path, default=None, help="root the list entries are relative to")
    parser.add_argument("--json", type=Path, default=None, help="also write the full report as JSON here")
    args = parser.parse_args(argv)
    try:
        report = audit_lists(args.lists_dir, args.base_path)
    except ListFileError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(format_report(report))
    if args.json is not None:
        args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        print(f"json_report: {args.json}")
    return 0 if audit_ok(report) else 1


if __name__ == "__main__":
    sys.exit(main())

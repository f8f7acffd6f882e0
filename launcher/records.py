"""The experiment's submission log ``<experiment dir>/slurm_submissions.jsonl``.

One JSON line per submitted job (or array task): which trial, job id, run
directory and log files.  ``efnas status`` and the re-run logic of ``efnas
submit`` read it; SLURM job ids never name a run directory.
"""

from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Dict, Iterable, List, Mapping, Optional

from edgeflownas.errors import SubmitError

RECORD_FILE = "slurm_submissions.jsonl"


def record_path(experiment_dir: Path) -> Path:
    """Where an experiment's submissions are logged."""
    return Path(experiment_dir) / RECORD_FILE


def append_records(experiment_dir: Path, rows: Iterable[Mapping[str, Any]]) -> None:
    """Append one line per submitted job (flushed and fsynced: a record must not get lost)."""
    path = record_path(experiment_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(timezone.utc).isoformat(timespec="seconds")
    with open(path, "a", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(dict(row, submitted_at=stamp), sort_keys=True) + "\n")
        handle.flush()
        os.fsync(handle.fileno())


def read_records(experiment_dir: Path) -> List[Dict[str, Any]]:
    """Every record of an experiment, oldest first (empty if none was ever submitted)."""
    path = record_path(experiment_dir)
    if not path.is_file():
        return []
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            raise SubmitError(f"{path} line {number} is not valid JSON: {line[:120]}") from None
    return rows


def latest_by_trial(rows: Iterable[Mapping[str, Any]]) -> Dict[Optional[str], Dict[str, Any]]:
    """The newest record of each trial (key None for a single, non-sweep run)."""
    latest: Dict[Optional[str], Dict[str, Any]] = {}
    for row in rows:
        latest[row.get("trial")] = dict(row)
    return latest

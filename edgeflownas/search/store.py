"""The search result store: append-only JSON lines, one fsync'd line per scored candidate.

A result is keyed by (checkpoint sha256, arch code, scoring settings), so a
candidate is never scored twice for the same weights and the same scoring,
whichever strategy or re-run asks for it.  Every writer appends to a file of
its own (``<store>/<writer>.jsonl``: the driver, or one file per SLURM array
task), because appends from several nodes to one file are not safe on
Lustre/GPFS/NFS; readers merge all files.  A crash can leave at most one torn
last line in a writer's file: readers ignore it, and the writer cuts it off
before its next append (that candidate is simply scored again).  A torn line
anywhere else means the file was damaged and is an error naming it.  A store
can also read other store directories it never writes (``read_also``): the
ranking study reads a read-only run's store this way while it writes its own.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple

from edgeflownas.errors import SearchError
from edgeflownas.nas.arch_codec import ArchCode, arch_name

STORE_SUFFIX = ".jsonl"
Key = Tuple[str, str, str]


def scoring_key(scoring: Mapping[str, Any]) -> str:
    """Canonical text of the scoring settings (the third part of a result's key)."""
    return json.dumps(dict(scoring), sort_keys=True, separators=(",", ":"))


def result_key(checkpoint_sha256: str, code: ArchCode, scoring: Mapping[str, Any]) -> Key:
    """The key a result is stored under."""
    return checkpoint_sha256, arch_name(code), scoring_key(scoring)


def _complete_lines(path: Path) -> Iterator[Tuple[int, str]]:
    """(line number, text) of every newline-terminated line; a torn last line is left out."""
    data = path.read_bytes()
    end = data.rfind(b"\n") + 1
    for number, raw in enumerate(data[:end].split(b"\n")[:-1], start=1):
        try:
            yield number, raw.decode("utf-8")
        except UnicodeDecodeError:
            raise SearchError(f"search store {path} line {number} is damaged (bytes that are not UTF-8 text): "
                              "remove that line (its candidate is scored again) or the file") from None


def require_finite_epe(record: Mapping[str, Any], where: str, stored: bool = True) -> None:
    """SearchError unless ``record['epe']`` is a finite number (a NaN score would rank nowhere and is not JSON).

    ``stored``: the record is a line of a store (read back), which is removed to score it again; otherwise it was
    just scored and nothing was written.
    """
    epe = record.get("epe")
    if isinstance(epe, bool) or not isinstance(epe, (int, float)) or not math.isfinite(epe):
        name = record.get("name") or arch_name(tuple(record.get("arch_code", ())))
        fix = ("remove that line from the store to score it again" if stored
               else f"nothing was stored; see the subnet's figures with efnas eval --run RUN --arch {name}")
        raise SearchError(f"{where}: EPE {epe!r} of {name} is not a finite number; a non-finite score means the "
                          f"checkpoint's weights give no usable flow for it: check the run, {fix}")


def _read_file(path: Path) -> List[Dict[str, Any]]:
    records = []
    for number, line in _complete_lines(path):
        try:
            record = json.loads(line)
            result_key(record["checkpoint_sha256"], tuple(record["arch_code"]), record["scoring"])
        except (ValueError, KeyError, TypeError, AttributeError) as error:
            raise SearchError(f"search store {path} line {number} is damaged ({error}): remove that line "
                              "(its candidate is scored again) or the file") from None
        require_finite_epe(record, f"search store {path} line {number}")
        records.append(record)
    return records


class ResultStore:
    """All results under ``directory`` (and under ``read_also``, only read); ``add`` appends to this writer's own
    file in ``directory``."""

    def __init__(self, directory: Path, writer: str = "driver", read_also: Sequence[Path] = ()) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.read_also = [Path(folder) for folder in read_also]
        self.path = self.directory / f"{writer}{STORE_SUFFIX}"
        self._cut_torn_tail()
        self.results: Dict[Key, Dict[str, Any]] = {}
        self.reload()

    def _cut_torn_tail(self) -> None:
        """Drop a partial last line this writer left when it was killed mid-append."""
        if not self.path.is_file():
            return
        size = self.path.stat().st_size
        with open(self.path, "rb+") as handle:
            data = handle.read()
            keep = data.rfind(b"\n") + 1
            if keep != size:
                handle.truncate(keep)
                os.fsync(handle.fileno())

    def reload(self) -> None:
        """Read every writer's file again (results other writers added since); this store's folder first."""
        for path in [path for folder in (self.directory, *self.read_also)
                     for path in sorted(folder.glob(f"*{STORE_SUFFIX}"))]:
            for record in _read_file(path):
                key = result_key(record["checkpoint_sha256"], tuple(record["arch_code"]), record["scoring"])
                self.results.setdefault(key, record)

    def get(self, checkpoint_sha256: str, code: ArchCode, scoring: Mapping[str, Any]) -> Optional[Dict[str, Any]]:
        """The stored result of ``code`` for these weights and scoring, or None."""
        return self.results.get(result_key(checkpoint_sha256, code, scoring))

    def add(self, record: Mapping[str, Any]) -> None:
        """Append one result (must carry checkpoint_sha256, arch_code, scoring) and fsync it."""
        key = result_key(record["checkpoint_sha256"], tuple(record["arch_code"]), record["scoring"])
        if key in self.results:
            return
        require_finite_epe(record, f"scoring into {self.path}", stored=False)
        line = json.dumps(dict(record), sort_keys=True) + "\n"
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(line)
            handle.flush()
            os.fsync(handle.fileno())
        self.results[key] = dict(record)

    def matching(self, checkpoint_sha256: str, scoring: Mapping[str, Any]) -> List[Dict[str, Any]]:
        """Every stored result for these weights and scoring."""
        wanted = scoring_key(scoring)
        return [r for (sha, _, settings), r in self.results.items() if sha == checkpoint_sha256 and settings == wanted]

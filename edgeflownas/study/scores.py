"""A ranking study's supernet scores, kept in the search's result store of the supernet run.

Each subnet gets two scores on each supernet: its EPE with BN recalibrated on
the first ``scoring.recal_batches`` of the run's recalibration batches (by
default all of them: the number ``efnas eval`` and ``efnas search`` give it),
and its EPE on the checkpoint's training BN statistics (0 recalibration
batches).  Both are scored as the search scores (``LocalEvaluation``: one
``CheckpointEvaluator`` of the run) and kept in a search ``ResultStore`` under
(weights digest, code, scoring settings), the same key and the same lines as a
search's.  So one score exists per (run, scoring settings, subnet), whichever
of ``efnas search`` and ``efnas study`` asked for it first:

- **where**: the store ``efnas search --run RUN`` keeps by default,
  ``RUN/search/store``.  The study appends to a file of its own there
  (``study-<study name>-<digest of the study directory>.jsonl``), as every
  writer of a store does, so a search of the same run may be scoring at the
  same time.  The run's other search stores (``RUN/search*/store``: searches
  with ``--out RUN/search_<x>``) are read too, never written;
- **a run the study cannot write in** (a read-only mount, somebody else's
  run): the study writes to its own store, ``<study>/score_store``, and still
  reads the run's stores.  Its new scores are then not seen by a later search
  of the run; the study says so once when it starts scoring;
- **a study started before the store** kept its scores in
  ``supernet_scores.json`` (``supernet.run``) or
  ``supernet_scores_seed<s>.json`` in the study directory.  That file is a
  migration source, only read, never written or removed: when its scoring
  settings (the weights digest included) are the ones the study scores with
  now, its scores are imported into the store (each line marked
  ``imported_from``) and nothing is scored again; under other settings it is
  ignored, with a log line.
"""

from __future__ import annotations

import hashlib
import math
import os
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Sequence

from edgeflownas.atomic_io import read_json
from edgeflownas.errors import StudyError
from edgeflownas.nas import front as fr
from edgeflownas.nas.arch_codec import ArchCode, arch_name
from edgeflownas.progress import Progress
from edgeflownas.search.run import STORE_DIR, LocalEvaluation, Scorer
from edgeflownas.search.store import STORE_SUFFIX, ResultStore
from edgeflownas.train.trained_run import SEARCH_DIR, TrainedRun

OWN_STORE = "score_store"  # <study>/score_store: the study's store when the run's cannot be written
NO_RECAL = 0  # recalibration batches of the second score: the checkpoint's training BN statistics


def writer_name(study_dir: Path, name: str) -> str:
    """The study's file in a store: ``study-<name>-<8 hex digits of the study directory>`` (one per study
    directory, which the study's lock keeps to one process; two studies of one name elsewhere differ)."""
    where = hashlib.sha256(str(Path(study_dir).resolve()).encode("utf-8")).hexdigest()[:8]
    return f"study-{name}-{where}"


def run_store_dir(run_dir: Path) -> Path:
    """The store ``efnas search --run RUN`` keeps by default: ``RUN/search/store``."""
    return Path(run_dir) / SEARCH_DIR / STORE_DIR


def _writable(directory: Path, writer: str) -> bool:
    """Whether this process can make ``directory`` (if needed) and append its writer's file there."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError:
        return False
    target = directory / f"{writer}{STORE_SUFFIX}"
    return os.access(directory, os.W_OK | os.X_OK) and (not target.exists() or os.access(target, os.W_OK))


def open_store(study_dir: Path, name: str, run_dir: Path, log: Callable[[str], None]) -> ResultStore:
    """The store the study keeps ``run_dir``'s scores in (see the module doc), reading the run's other stores and
    the study's own store too."""
    writer = writer_name(study_dir, name)
    run_store, own = run_store_dir(run_dir), Path(study_dir) / OWN_STORE
    if _writable(run_store, writer):
        target = run_store
    else:
        target = own
        log(f"scores: cannot write in {run_store} (read-only file system or no permission): new scores go to "
            f"{own}, the run's stores are only read (a search of {run_dir} will not see them)")
    candidates = sorted(path for path in Path(run_dir).glob(f"{SEARCH_DIR}*/{STORE_DIR}") if path.is_dir())
    read_also = [path for path in candidates + [own]
                 if path.is_dir() and path.resolve() != target.resolve()]
    return ResultStore(target, writer=writer, read_also=read_also)


def legacy_scores(path: Path, scoring: Mapping[str, Any]) -> List[Dict[str, Any]]:
    """The store records a study's older ``supernet_scores*.json`` holds for ``scoring`` (the recalibrated EPE
    under ``scoring``, the one without recalibration under ``scoring`` with 0 recalibration batches); empty when
    the file was written under other settings.  Non-finite EPEs are left out (scored again)."""
    doc = read_json(path, StudyError, "nothing to import", "move it aside: its subnets are scored again")
    if doc.get("scoring") != dict(scoring):
        return []
    subnets = doc.get("subnets")
    if not isinstance(subnets, dict):
        raise StudyError(f"{path} is damaged (no 'subnets' object): move it aside, its subnets are scored again")
    settings = {"epe": dict(scoring), "epe_no_recal": dict(scoring, recal_batches=NO_RECAL)}
    records = []
    for name, entry in subnets.items():
        try:
            code = tuple(int(option) for option in entry["code"])
            cost = {"macs": entry["macs"], "params": entry["params"]}
        except (KeyError, TypeError, ValueError):
            raise StudyError(f"{path}: subnet {name!r} is damaged (code, macs, params): move the file aside, its "
                             "subnets are scored again") from None
        if arch_name(code) != name:
            raise StudyError(f"{path}: subnet {name!r} holds the code of {arch_name(code)}: move the file aside, "
                             "its subnets are scored again")
        for field, key in settings.items():
            epe = entry.get(field)
            if isinstance(epe, (int, float)) and not isinstance(epe, bool) and math.isfinite(epe):
                records.append(dict(fr.entry(code, epe, cost), checkpoint_sha256=scoring["checkpoint_sha256"],
                                    scoring=key, imported_from=path.name))
    return records


def import_legacy(path: Path, scoring: Mapping[str, Any], store: ResultStore, log: Callable[[str], None]) -> int:
    """Import ``path`` (an older study's scores file, if there is one) into ``store``; returns how many scores were
    new to the store.  The file itself is only read."""
    path = Path(path)
    if not path.is_file():
        return 0
    records = legacy_scores(path, scoring)
    if not records:
        log(f"scores: {path} belongs to other weights or scoring settings; not used")
        return 0
    new = [record for record in records
           if store.get(record["checkpoint_sha256"], tuple(record["arch_code"]), record["scoring"]) is None]
    for record in new:
        store.add(record)
    if new:
        log(f"scores: {len(new)} scores imported from {path} into {store.directory} (the file is kept, unchanged)")
    return len(new)


def score_codes(run: TrainedRun, codes: Sequence[ArchCode], scoring: Mapping[str, Any], store: ResultStore,
                log: Callable[[str], None]) -> Dict[str, Dict[str, Any]]:
    """{arch name: code, epe, epe_no_recal, params, macs} of every code on ``run``: from ``store``, or scored into it
    (each score appended before the next starts, so a killed study loses at most one)."""
    sha = run.weights_sha256
    recal, no_recal = dict(scoring), dict(scoring, recal_batches=NO_RECAL)
    missing = [code for code in codes if store.get(sha, code, recal) is None or store.get(sha, code, no_recal) is None]
    if not missing:
        log(f"scores: {len(codes)} subnets already scored ({store.directory})")
    else:
        local = LocalEvaluation(run)
        with_recal, without = Scorer(store, sha, recal, local), Scorer(store, sha, no_recal, local)
        progress = Progress(len(codes), len(codes) - len(missing))
        try:
            for code in missing:
                epe, epe_no_recal = with_recal([code])[tuple(code)], without([code])[tuple(code)]
                progress.advance()
                log(f"scores {run.run_dir.name}: {progress.line()} ({arch_name(code)}: EPE {epe:.4f}, no recal "
                    f"{epe_no_recal:.4f})")
        finally:
            local.close()
    return {arch_name(code): {"code": list(code), "epe": float(store.get(sha, code, recal)["epe"]),
                              "epe_no_recal": float(store.get(sha, code, no_recal)["epe"]), **run.cost(code)}
            for code in codes}

"""Atomic checkpoint directories: TF variables + a JSON state, swapped in whole.

``supernet_last.ckpt/`` and ``supernet_best.ckpt/`` are directories holding
``model.index`` / ``model.data-*`` (a TF checkpoint) and ``state.json`` (the
counters needed to resume exactly: global step, epoch, data position, sampler
cycle, early-stop state, history, fairness counts, config hash).  A save
builds the next version in a staging directory, fsyncs it, and swaps it in;
a crash at any moment leaves the previous checkpoint readable.  Resume reads
every counter from ``state.json``, never from a file name.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any, Callable, Dict

from edgeflownas.atomic_io import recover_dir, replace_dir_atomic, staging_dir, write_json_atomic
from edgeflownas.errors import CheckpointError

STATE_FILE = "state.json"
MODEL_PREFIX = "model"
STATE_FORMAT = 1
REQUIRED_STATE = ("format", "config_hash", "global_step", "epoch", "next_batch_index", "cycle_index")


def model_prefix(checkpoint_dir: Path) -> str:
    """The TF checkpoint prefix inside a checkpoint directory (for Saver.save/restore)."""
    return str(Path(checkpoint_dir) / MODEL_PREFIX)


def _fsync_tree(directory: Path) -> None:
    for path in directory.iterdir():
        with open(path, "rb") as handle:
            os.fsync(handle.fileno())


def save_checkpoint(target: Path, save_model: Callable[[str], Any], state: Dict[str, Any]) -> None:
    """Write ``save_model(prefix)`` + state.json into a staging dir, then swap it in as ``target``."""
    target = Path(target)
    recover_dir(target)
    staging = staging_dir(target)
    try:
        save_model(model_prefix(staging))
        write_json_atomic(staging / STATE_FILE, dict(state, format=STATE_FORMAT))
        _fsync_tree(staging)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    replace_dir_atomic(staging, target)


def has_checkpoint(target: Path) -> bool:
    """True if ``target`` (after undoing an interrupted swap) holds a complete checkpoint."""
    target = Path(target)
    recover_dir(target)
    return (target / STATE_FILE).is_file() and (target / f"{MODEL_PREFIX}.index").is_file()


def read_state(target: Path) -> Dict[str, Any]:
    """The state.json of a checkpoint directory; CheckpointError naming the file if absent or malformed."""
    target = Path(target)
    recover_dir(target)
    path = target / STATE_FILE
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint state {path} is missing: {target} is not a complete checkpoint") from None
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"checkpoint state {path} is not valid JSON ({exc})") from None
    missing = [key for key in REQUIRED_STATE if key not in state]
    if missing:
        raise CheckpointError(f"checkpoint state {path} lacks {', '.join(missing)}")
    if state["format"] != STATE_FORMAT:
        raise CheckpointError(f"checkpoint state {path} has format {state['format']}, this efnas reads {STATE_FORMAT}")
    if not (target / f"{MODEL_PREFIX}.index").is_file():
        raise CheckpointError(f"checkpoint {target} has a state but no {MODEL_PREFIX}.index (TF variables)")
    return state

"""What an export starts from: one subnet's weights (BN recalibrated or its own) and the run's fixed batches.

A supernet run gives the subnet's weights with BN statistics recalibrated
exactly as ``efnas eval`` does (``CheckpointEvaluator``); a fixed-arch run (a
retrain: ``train.supernet_mode`` 'fixed_arch') gives its own weights and BN
statistics straight from the checkpoint.  Either way the run's BN-recalibration
batches (from the training data: the int8 representative set) and validation
batches (EPE of every format) are the trainer's own ``eval_batches``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional

import numpy as np

from edgeflownas.config import resolve_mapping
from edgeflownas.config_types import Config
from edgeflownas.errors import ArchCodeError, CheckpointError
from edgeflownas.nas.arch_codec import ArchCode, arch_name, parse_arch_code
from edgeflownas.train import checkpoint

FIXED_ARCH_MODE = "fixed_arch"


@dataclass
class ExportSource:
    """One subnet ready to export: config, code, variable values, the checkpoint and the run's batches."""

    run_dir: Path
    ckpt_dir: Path
    kind: str  # "supernet" or "fixed_arch"
    config: Config
    code: ArchCode
    values: Dict[str, np.ndarray]
    recal_batches: List
    val_batches: List
    evaluator_epe: Optional[float]  # the trainer's EPE of the subnet at this checkpoint (supernet runs)


def resolve_arch(run_dir: Path, selector: Optional[str]) -> Optional[ArchCode]:
    """``baseline``, a code or name, or ``best`` / ``rank:N`` of ``<run>/search/front.json``; None if not given."""
    from edgeflownas.search.front import select_code

    return None if selector is None else select_code(Path(run_dir), selector)


def load_source(run_dir: Path, selector: Optional[str], which: str = "best",
                log: Callable[[str], None] = lambda line: None) -> ExportSource:
    """The subnet ``selector`` names in ``run_dir``'s ``which`` checkpoint, with the run's batches."""
    from edgeflownas.train.checkpoint_eval import checkpoint_dir

    ckpt_dir = checkpoint_dir(Path(run_dir), which)
    state = checkpoint.read_state(ckpt_dir)
    if "config" not in state:
        raise CheckpointError(f"{ckpt_dir / checkpoint.STATE_FILE} has no 'config': written by an older efnas")
    if state["config"].get("train", {}).get("supernet_mode") == FIXED_ARCH_MODE:
        return _fixed_arch_source(Path(run_dir), ckpt_dir, state, selector, log)
    code = resolve_arch(run_dir, selector)
    if code is None:
        raise ArchCodeError(f"{run_dir} is a supernet run: --arch is required (baseline, a 9-digit code, "
                            "best or rank:N of its search)")
    return _supernet_source(Path(run_dir), which, code, log)


def _supernet_source(run_dir: Path, which: str, code: ArchCode, log: Callable[[str], None]) -> ExportSource:
    from edgeflownas.train.checkpoint_eval import CheckpointEvaluator

    with CheckpointEvaluator(run_dir, which, log) as evaluator:
        metrics = evaluator.evaluate(code)  # leaves BN recalibrated for ``code`` in the session
        values = evaluator.variable_values()
        return ExportSource(run_dir, evaluator.ckpt_dir, "supernet", evaluator.resolved.config, code, values,
                            list(evaluator.evaluator.recal_batches), list(evaluator.val_batches), metrics.epe)


def _fixed_arch_source(run_dir: Path, ckpt_dir: Path, state: Dict, selector: Optional[str],
                       log: Callable[[str], None]) -> ExportSource:
    import tensorflow as tf

    from edgeflownas.data.loader import open_source
    from edgeflownas.train.plan import plan_from_state
    from edgeflownas.train.eval_data import eval_batches

    config = resolve_mapping(state["config"], {}, origin=f"config stored in {ckpt_dir}").config
    code = parse_arch_code(config.model.fixed_arch_code)
    asked = resolve_arch(run_dir, selector)
    if asked is not None and asked != code:
        raise ArchCodeError(f"--arch {selector!r} is {arch_name(asked)}, but {run_dir} trained the fixed arch "
                            f"{arch_name(code)} only: leave --arch out (or give that code)")
    checkpoint.verify_checkpoint(ckpt_dir)
    reader = tf.train.load_checkpoint(checkpoint.model_prefix(ckpt_dir))
    values = {name: reader.get_tensor(name) for name in reader.get_variable_to_shape_map()
              if name.startswith("supernet/")}
    train_source, val_source = open_source(config.data, "train"), open_source(config.data, "val")
    try:
        recal, val = eval_batches(train_source, val_source, plan_from_state(state, ckpt_dir), config.experiment.seed)
    finally:
        train_source.close()
        val_source.close()
    log(f"fixed-arch checkpoint {ckpt_dir}: subnet {arch_name(code)}, its own weights and BN statistics")
    return ExportSource(run_dir, ckpt_dir, FIXED_ARCH_MODE, config, code, values, list(recal), list(val), None)

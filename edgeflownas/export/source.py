"""What an export starts from: one subnet's weights (BN recalibrated or its own) and the run's fixed batches.

The run is read through ``TrainedRun`` (one checkpoint, its verified digest,
config and kind).  A supernet run gives the subnet's weights with BN
statistics recalibrated exactly as ``efnas eval`` does; a fixed-arch run (a
retrain: ``train.supernet_mode`` 'fixed_arch') gives its own weights and BN
statistics, and refuses any other code in one line.  Either way the
validation batches (EPE of every format) are the trainer's own
``eval_batches``; ``recal_batches`` are the run's BN-recalibration batches
(none for a fixed-arch run; the int8 representative set is drawn by
``export.api.calibration_pairs``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional

import numpy as np

from edgeflownas.config_types import Config
from edgeflownas.errors import ArchCodeError
from edgeflownas.nas.arch_codec import ArchCode, arch_name
from edgeflownas.train.trained_run import FIXED_ARCH, SUPERNET, TrainedRun


@dataclass
class ExportSource:
    """One subnet ready to export: config, code, variable values, the checkpoint and the run's batches."""

    run_dir: Path
    ckpt_dir: Path
    kind: str  # "supernet" or "fixed_arch"
    config: Config
    code: ArchCode
    values: Dict[str, np.ndarray]
    recal_batches: List  # the run's BN-recalibration batches (none for a fixed-arch run)
    val_batches: List
    evaluator_epe: Optional[float]  # the trainer's EPE of the subnet at this checkpoint
    weights_sha256: str  # of the checkpoint, verified against its state.json when the run was opened
    run: TrainedRun  # the run it comes from: its costs are the ones eval and search give


def load_source(run_dir: Path, selector: Optional[str], which: str = "best",
                log: Callable[[str], None] = lambda line: None) -> ExportSource:
    """The subnet ``selector`` names in ``run_dir``'s ``which`` checkpoint, with the run's batches."""
    run = TrainedRun.open(Path(run_dir), which)
    code = chosen_code(run, selector)
    if run.fixed_code is not None:
        return _fixed_arch_source(run, code, log)
    return _supernet_source(run, code, log)


def chosen_code(run: TrainedRun, selector: Optional[str]) -> ArchCode:
    """The code ``--arch`` names in ``run`` (a fixed-arch run's own code when not given)."""
    if selector is None and run.fixed_code is not None:
        return run.fixed_code
    if selector is None:
        raise ArchCodeError(f"{run.run_dir} is a supernet run: --arch is required (baseline, a 9-digit code, "
                            "best or rank:N of its search)")
    return run.select(selector)


def _supernet_source(run: TrainedRun, code: ArchCode, log: Callable[[str], None]) -> ExportSource:
    with run.evaluator(log) as evaluator:
        metrics = evaluator.evaluate(code)  # leaves BN recalibrated for ``code`` in the session
        values = evaluator.variable_values()
        return ExportSource(run.run_dir, run.ckpt_dir, SUPERNET, run.config, code, values,
                            list(evaluator.evaluator.recal_batches), list(evaluator.val_batches), metrics.epe,
                            run.weights_sha256, run)


def _fixed_arch_source(run: TrainedRun, code: ArchCode, log: Callable[[str], None]) -> ExportSource:
    with run.evaluator(log) as evaluator:
        metrics = evaluator.evaluate(code)  # BN left as trained: a fixed-arch run recalibrates nothing
        values = evaluator.variable_values()
        log(f"fixed-arch checkpoint {run.ckpt_dir}: subnet {arch_name(code)}, its own weights and BN statistics")
        return ExportSource(run.run_dir, run.ckpt_dir, FIXED_ARCH, run.config, code, values,
                            list(evaluator.evaluator.recal_batches), list(evaluator.val_batches), metrics.epe,
                            run.weights_sha256, run)

"""Read a training run directory's artifacts (docs/design.md §6) into one typed object for reports.

Every number a report shows comes from these files as written by the
trainer, through the readers of their owners: ``eval_epe_history.csv``
(``run_dir.read_history``: an empty cell, i.e. an epoch without pool
evaluation, becomes ``None``), ``eval_pool_<n>.json`` (n from the manifest's plan),
``fairness_counts.json``, ``train_manifest.json`` and the ``state.json`` of
``supernet_last.ckpt`` (early-stop counters); ``train.log``'s step lines for the loss
between epochs (``train.progress.step_losses``).  A missing or malformed
artifact is an error naming the file; nothing is guessed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from edgeflownas import atomic_io
from edgeflownas.errors import CheckpointError
from edgeflownas.nas.arch_codec import ArchCode, arch_name
from edgeflownas.nas.eval_pool import load_pool, pool_file_name
from edgeflownas.train import checkpoint, run_dir as rd
from edgeflownas.train.progress import step_losses


@dataclass(frozen=True)
class RunData:
    """The artifacts of one run directory."""

    run_dir: Path
    manifest: Dict[str, Any]
    history: List[Dict[str, Optional[float]]]
    columns: List[str]
    pool_seed: int
    pool: Tuple[ArchCode, ...]
    fairness: Dict[str, Any]
    last_state: Dict[str, Any]

    @property
    def pool_names(self) -> List[str]:
        """Arch names of the pool subnets, in pool order."""
        return [arch_name(code) for code in self.pool]

    @property
    def epe_columns(self) -> List[str]:
        """History columns of the per-subnet EPE, in pool order."""
        return [f"epe_{name}" for name in self.pool_names]

    @property
    def mean_column(self) -> str:
        """History column of the pool-mean EPE (``mean_epe_12``)."""
        return rd.mean_column(len(self.pool))

    @property
    def std_column(self) -> str:
        """History column of the pool-std EPE (``std_epe_12``)."""
        return rd.std_column(len(self.pool))

    def evaluated(self) -> List[Dict[str, Optional[float]]]:
        """History rows of epochs with a pool evaluation."""
        return [row for row in self.history if row.get(self.mean_column) is not None]

    def column(self, name: str) -> List[Optional[float]]:
        """One history column over all epochs."""
        return [row.get(name) for row in self.history]

    def step_losses(self) -> Dict[float, float]:
        """{fractional epoch: running epoch-average loss} of train.log's step lines (every
        ``train.log_every_steps``); empty without a log or a recorded ``steps_per_epoch``."""
        per_epoch = self.manifest.get("lr_schedule", {}).get("steps_per_epoch")
        log = self.run_dir / "train.log"
        if not per_epoch or not log.is_file():
            return {}
        with open(log, encoding="utf-8", errors="replace") as handle:
            return {step / per_epoch: loss for step, loss in step_losses(handle).items()}

    def early_stop_config(self) -> Dict[str, Any]:
        """The run's early_stop settings as recorded in the manifest's resolved config."""
        return dict(self.manifest.get("resolved_config", {}).get("early_stop", {}))


def read_json(path: Path) -> Dict[str, Any]:
    """A JSON object of a run directory; CheckpointError naming the file if missing or damaged."""
    return atomic_io.read_json(path, CheckpointError, "not a complete efnas run directory (was training started with "
                               "this --run directory?)", "the run directory is damaged; restore it from a backup")


def load_run(run_dir: Path) -> RunData:
    """Read every artifact of a run directory; CheckpointError naming the first missing or bad one."""
    run_dir = rd.require_run(run_dir)
    manifest = read_json(run_dir / rd.MANIFEST)
    pool_size = rd.recorded_pool_size(manifest.get("eval"), run_dir / rd.MANIFEST)
    pool_seed, pool = load_pool(run_dir / pool_file_name(pool_size))
    columns, history = rd.read_history(run_dir / rd.HISTORY)
    if not history:
        raise CheckpointError(f"{run_dir / rd.HISTORY} has a header but no epoch rows: the run has not finished "
                              "an epoch yet")
    missing = [f"epe_{arch_name(code)}" for code in pool if f"epe_{arch_name(code)}" not in columns]
    if missing:
        raise CheckpointError(f"{run_dir / rd.HISTORY} lacks columns {', '.join(missing)} of the pool in "
                              f"{run_dir / pool_file_name(pool_size)}: the two files come from different runs")
    fairness = read_json(run_dir / rd.FAIRNESS)
    last_state = checkpoint.read_state(run_dir / rd.LAST)
    return RunData(run_dir, manifest, history, columns, pool_seed, pool, fairness, last_state)

"""Score a search's candidates as SLURM job arrays (``efnas search --slurm``).

The search driver stays where it was started (a login node, or itself a job)
and, for each generation, hands the candidates that the store lacks to one
job array: task i scores its share with ``score_codes`` (the task
opens the run itself and refuses other weights or settings than the driver's) into a store file of its own
(``store/task-<jobid>.jsonl``: appends from several nodes to one file are not
safe on shared filesystems), and the driver reads every file back.  A task is
``Checkpointable``: on SLURM's USR2 warning it is requeued and skips what it
already stored.  A driver that is killed and started again re-runs the same
proposals, finds the finished scores in the store, and submits only what is
missing.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence

import submitit

from edgeflownas.config_types import SlurmConfig
from edgeflownas.errors import SearchError, SubmitError
from edgeflownas.nas.arch_codec import ArchCode
from edgeflownas.search.store import ResultStore
from edgeflownas.train.trained_run import TrainedRun
from launcher import slurm


class ScoreTask(submitit.helpers.Checkpointable):
    """One array task: score ``codes`` of a search into the store as ``task-<SLURM job id>``."""

    def __init__(self, run_dir: str, which: str, out_dir: str, codes: List[List[int]], scoring: Dict[str, Any],
                 data_overrides: Dict[str, Any]) -> None:
        self.run_dir, self.which, self.out_dir = run_dir, which, out_dir
        self.codes, self.scoring, self.data_overrides = codes, scoring, data_overrides

    def __call__(self) -> int:
        from edgeflownas.search.run import score_codes

        writer = f"task-{submitit.JobEnvironment().job_id}"
        return score_codes(Path(self.run_dir), self.which, Path(self.out_dir), [tuple(c) for c in self.codes],
                           self.scoring, self.data_overrides, writer)


def split(codes: Sequence[ArchCode], tasks: int) -> List[List[ArchCode]]:
    """``codes`` dealt round-robin into at most ``tasks`` non-empty shares."""
    count = max(1, min(tasks, len(codes)))
    return [list(codes[i::count]) for i in range(count)]


@dataclass
class ArrayEvaluation:
    """The search's ``Evaluation`` on SLURM: one job array per call, waited for, its failures named."""

    run_dir: Path
    which: str
    out_dir: Path
    data_overrides: Mapping[str, Any]
    slurm_cfg: SlurmConfig
    python: str
    params: Dict[str, Any]
    log_dir: Path
    tasks: int
    log: Callable[[str], None] = lambda line: None

    def __call__(self, codes: Sequence[ArchCode], scoring: Mapping[str, Any], store: ResultStore) -> None:
        shares = split(codes, self.tasks)
        callables = [ScoreTask(str(self.run_dir), self.which, str(self.out_dir), [list(c) for c in share],
                               dict(scoring), dict(self.data_overrides)) for share in shares]
        self.log_dir.mkdir(parents=True, exist_ok=True)
        executor = slurm.make_executor(self.log_dir, self.slurm_cfg.max_num_timeout, self.python, self.params)
        jobs = slurm.submit(executor, callables)
        first = jobs[0].job_id.split("_")[0]
        self.log(f"search: {len(codes)} candidates -> SLURM job {first} ({len(jobs)} task(s)); logs in {self.log_dir}")
        failures = []
        for job in jobs:
            try:
                job.result()
            except (submitit.core.utils.FailedJobError, submitit.core.utils.UncompletedJobError) as error:
                paths = slurm.log_paths(self.log_dir, job.job_id)
                reason = (str(error).strip().splitlines() or ["failed"])[-1]
                failures.append(f"task {job.job_id} ({reason}; stderr {paths['stderr']})")
        if failures:
            raise SearchError("scoring jobs failed: " + "; ".join(failures) + ". The scores that reached the store "
                              "are kept: run the same command again to continue")


def array_evaluation(run: TrainedRun, out_dir: Path, slurm_cfg: SlurmConfig, tasks: int,
                     log: Callable[[str], None], container_image: Optional[str] = None) -> ArrayEvaluation:
    """An ArrayEvaluation with the config's sbatch parameters, on the host's python or inside the container
    (``container_image``, default ``slurm.container_image``; the run, the search and its data folders are bound)."""
    from launcher.submit import launch_settings

    slurm.require_command("sbatch")
    if tasks < 1:
        raise SubmitError(f"--array_tasks {tasks}: at least one task per generation")
    log_dir = Path(out_dir) / "slurm"
    image = container_image or slurm_cfg.container_image
    container = Path(image).absolute() if image else None
    binds = [run.run_dir.absolute(), Path(out_dir).absolute(), *run.data_dirs(), *map(Path, slurm_cfg.container_binds)]
    python, params = launch_settings(slurm_cfg, container, f"efnas-search-{run.run_dir.name}", binds, log_dir,
                                     probe=True)
    return ArrayEvaluation(run.run_dir, run.which, Path(out_dir), dict(run.data_overrides), slurm_cfg,
                           python, params, log_dir, tasks, log)


def slurm_section(run: TrainedRun, config_path) -> SlurmConfig:
    """The slurm: section of ``config_path`` (validated), or of the config the run's checkpoint records."""
    from edgeflownas.config import resolve

    if config_path is not None:
        return resolve(Path(config_path)).config.slurm
    return run.config.slurm

"""Every use of submitit's private API, in one place.

efnas needs four things submitit does not expose publicly:

- ``slurm._make_sbatch_string``: the sbatch script submitit writes, rendered
  without submitting (``efnas submit --dry_run`` shows exactly what sbatch gets);
- ``SlurmExecutor._submitit_command_str``: the command the script runs, replaced
  by ``python -m launcher.job_entry`` (submitit's runner with a sturdier requeue);
- ``SlurmJobEnvironment._requeue``: that sturdier requeue, installed by job_entry;
- ``JobEnvironment._usr_sig``: the signal submitit's preemption handler listens to,
  deferred by the training job until the epoch position is saved.

``submitit_main``, ``get_logger`` and ``read_job_id`` are public names in internal modules.
The pyproject pin (submitit>=1.5,<1.6) keeps them stable;
tests/launcher/test_submitit_private.py fails loudly if a release changes any
of them.  submitit is imported inside the functions: ``efnas --help`` stays light.
"""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any, Callable, List, Optional, Tuple


def make_sbatch_string(command: str, folder: Path, map_count: Optional[int], **params: Any) -> str:
    """The sbatch script submitit's SlurmExecutor writes for these parameters and job command."""
    from submitit.slurm.slurm import _make_sbatch_string

    return _make_sbatch_string(command=command, folder=folder, map_count=map_count, **params)


def executor_class(command: Callable[[Any], str]):
    """A SlurmExecutor subclass whose sbatch script runs ``command(executor)`` instead of submitit's runner."""
    from submitit.slurm.slurm import SlurmExecutor

    class CommandSlurmExecutor(SlurmExecutor):
        @property
        def _submitit_command_str(self) -> str:
            return command(self)

    return CommandSlurmExecutor


def install_requeue(requeue: Callable[[Any, int], None]) -> None:
    """Make ``requeue(environment, countdown)`` the requeue submitit's preemption handler calls in this job."""
    from submitit.slurm.slurm import SlurmJobEnvironment

    SlurmJobEnvironment._requeue = requeue


def usr_signal() -> signal.Signals:
    """The signal submitit's checkpoint-and-requeue handler is registered on (SIGUSR2 unless configured)."""
    from submitit.core.job_environment import JobEnvironment

    return JobEnvironment._usr_sig()


def run_submitit_main() -> None:
    """submitit's job runner (``python -m submitit.core._submit``): unpickle, run, pickle the result."""
    from submitit.core.submission import submitit_main

    submitit_main()


def submitit_logger():
    """The logger submitit's job runner writes to the job's log (requeue notes belong beside its own)."""
    from submitit.core.logger import get_logger

    return get_logger()


def read_job_id(job_id: str) -> List[Tuple[str, ...]]:
    """sacct job id parts: ``12_[1-3]`` -> [("12", "1", "3")], ``12_4`` -> [("12", "4")]."""
    from submitit.slurm.slurm import read_job_id as parse

    return parse(job_id)

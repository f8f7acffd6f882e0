"""The SLURM side of a submission: sbatch parameters, the submitit executor, sacct.

The same parameter mapping feeds ``--dry_run`` (the sbatch script is rendered by
submitit's own writer) and the real submission, so what the dry run prints is
what sbatch receives.  Every external command gets a list of arguments; the
only shell text is the sbatch script itself, with every path quoted.
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterable, List, Sequence

from edgeflownas.config_types import SlurmConfig
from edgeflownas.errors import SubmitError
from launcher import submitit_private

JOB_ENTRY = "launcher.job_entry"  # submitit.core._submit with a sturdier requeue
ACTIVE_STATES = frozenset({"PENDING", "RUNNING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "RESIZING",
                           "SUSPENDED", "CONFIGURING", "COMPLETING", "SIGNALING", "STAGE_OUT"})


def require_command(name: str) -> str:
    """Absolute path of a SLURM client command; SubmitError if it is not on PATH."""
    found = shutil.which(name)
    if found is None:
        raise SubmitError(
            f"'{name}' not found on PATH: efnas submit must run where the SLURM client tools are installed "
            "(a login node); use --dry_run to see the sbatch script without SLURM"
        )
    return found


def mem_string(mem_gb: float) -> str:
    """sbatch --mem value for a size in GB (whole GB, else MB)."""
    return f"{int(mem_gb)}GB" if float(mem_gb).is_integer() else f"{int(mem_gb * 1024)}MB"


def resource_parameters(slurm: SlurmConfig) -> Dict[str, Any]:
    """The config's sbatch resources, sbatch-native names in #SBATCH order (the one config -> sbatch mapping)."""
    params: Dict[str, Any] = {"time": slurm.time_min, "nodes": slurm.nodes, "cpus_per_task": slurm.cpus_per_task,
                              "mem": mem_string(slurm.mem_gb)}
    if slurm.gpus_per_node:
        params["gpus_per_node"] = slurm.gpus_per_node
    for key in ("partition", "account", "qos"):
        if getattr(slurm, key):
            params[key] = getattr(slurm, key)
    return params


def sbatch_parameters(slurm: SlurmConfig, job_name: str, setup: Sequence[str] = (),
                      teardown: Sequence[str] = ()) -> Dict[str, Any]:
    """submitit SlurmExecutor parameters (sbatch-native names) for one submission."""
    params: Dict[str, Any] = {"job_name": job_name, **resource_parameters(slurm),
                              "signal_delay_s": slurm.signal_delay_s, "array_parallelism": slurm.array_parallelism}
    if list(slurm.setup) + list(setup):
        params["setup"] = list(slurm.setup) + list(setup)
    if teardown:
        params["teardown"] = list(teardown)
    if slurm.additional_parameters:
        params["additional_parameters"] = dict(slurm.additional_parameters)
    return params


def sbatch_flag(key: str, value: Any) -> str:
    """One ``#SBATCH`` line as submitit writes it (underscores -> dashes, value shell-quoted, true = bare flag)."""
    flag = key.replace("_", "-")
    return f"#SBATCH --{flag}" if value is True else f"#SBATCH --{flag}={shlex.quote(str(value))}"


def host_python() -> str:
    """The submitting interpreter, as the job's python command."""
    return shlex.quote(sys.executable)


def submitit_command(python: str, folder: Path) -> str:
    """The command line the sbatch script runs under srun."""
    return " ".join([python, "-u -m", JOB_ENTRY, shlex.quote(str(folder))])


def render_sbatch(params: Dict[str, Any], folder: Path, python: str, array_size: int) -> str:
    """The sbatch script submitit would write for these parameters (used by --dry_run)."""
    return submitit_private.make_sbatch_string(submitit_command(python, folder), folder,
                                               array_size if array_size > 1 else None, **params)


def make_executor(folder: Path, max_num_timeout: int, python: str, params: Dict[str, Any]):
    """A submitit SlurmExecutor whose job command is ``<python> -u -m launcher.job_entry <folder>``."""
    require_command("sbatch")
    executor_class = submitit_private.executor_class(lambda executor: submitit_command(executor.python,
                                                                                       executor.folder))
    executor = executor_class(folder, max_num_timeout=max_num_timeout, python=python)
    executor.update_parameters(**params)
    return executor


def submit(executor, callables: Sequence[Any]) -> List[Any]:
    """Submit one job, or one job array for several callables; SubmitError carries sbatch's message."""
    from submitit.core.utils import FailedJobError, FailedSubmissionError

    try:
        if len(callables) == 1:
            return [executor.submit(callables[0])]
        return executor.submit_array(list(callables))
    except (FailedJobError, FailedSubmissionError) as error:
        message = str(error).strip().splitlines()
        raise SubmitError("sbatch refused the submission: " + " | ".join(m for m in message if m)) from None


@dataclass(frozen=True)
class JobState:
    """A job's current SLURM state and how often it was requeued (from sacct -D)."""

    state: str
    requeues: int

    @property
    def active(self) -> bool:
        """Queued or running (a re-submission would run the same trial twice)."""
        return self.state in ACTIVE_STATES


def _expand(job_id: str) -> List[str]:
    keys = []
    for part in submitit_private.read_job_id(job_id):
        if len(part) == 3:
            keys.extend(f"{part[0]}_{i}" for i in range(int(part[1]), int(part[2]) + 1))
        else:
            keys.append("_".join(part))
    return keys


def query_states(job_ids: Iterable[str]) -> Dict[str, JobState]:
    """State and requeue count of each job id (``123`` or ``123_4``) that sacct knows."""
    ids = sorted({str(j).split("_")[0] for j in job_ids})
    if not ids:
        return {}
    sacct = require_command("sacct")
    command = [sacct, "-D", "-X", "-n", "-P", "-o", "JobID,State", "-j", ",".join(ids)]
    try:
        out = subprocess.run(command, capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired:
        raise SubmitError(f"sacct did not answer within 60 s ({' '.join(command)})") from None
    if out.returncode != 0:
        raise SubmitError(f"sacct failed ({' '.join(command)}): {out.stderr.strip()}")
    rows: Dict[str, List[str]] = {}
    for line in out.stdout.splitlines():
        if "|" not in line:
            continue
        raw_id, state = line.split("|", 1)
        for key in _expand(raw_id.strip()):
            rows.setdefault(key, []).append(state.split()[0] if state.strip() else "UNKNOWN")
    states = {}
    for key, seen in rows.items():
        current = [s for s in seen if s != "REQUEUED"]
        states[key] = JobState(current[-1] if current else "REQUEUED", seen.count("REQUEUED"))
    return states


def log_paths(folder: Path, job_id: str) -> Dict[str, Path]:
    """stdout/stderr files submitit's sbatch script writes for a job (or array task) id."""
    from submitit.core.utils import JobPaths

    paths = JobPaths(folder, job_id=job_id, task_id=0)
    return {"stdout": paths.stdout, "stderr": paths.stderr}


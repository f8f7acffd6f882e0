"""Turn a SubmissionPlan into SLURM jobs (or, with dry_run, into the sbatch script).

Per trial: finished (its run directory holds a launch_result.json for the same
training config) -> skipped; its last job still queued or running (sacct) ->
skipped; otherwise submitted, and the job resumes from whatever the run
directory already holds.  Several trials go out as one job array.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Sequence

from edgeflownas.config_types import SlurmConfig
from edgeflownas.errors import SubmitError
from launcher import container as containers
from launcher import slurm
from launcher.job import TrainingJob
from launcher.plan import SubmissionPlan, TrialPlan, finished_result, training_fingerprint
from launcher.records import append_records, latest_by_trial, read_records

SUBMIT, FINISHED, ACTIVE = "submit", "finished", "active"


@dataclass(frozen=True)
class Decision:
    """What happens to one trial, and why."""

    trial: TrialPlan
    action: str
    detail: str = ""


@dataclass(frozen=True)
class SubmittedJob:
    """A job (or array task) that was handed to sbatch."""

    trial: TrialPlan
    job_id: str
    stdout: Path
    stderr: Path


def decide(plan: SubmissionPlan, check_active: bool) -> List[Decision]:
    """Which trials to submit; ``check_active`` asks sacct about the trials' last jobs."""
    latest = latest_by_trial(read_records(plan.experiment_dir))
    if latest and plan.is_sweep != (None not in latest):
        kind = "a sweep" if None not in latest else "a single run"
        raise SubmitError(f"experiment directory {plan.experiment_dir} already holds {kind}: use another experiment name")
    states = slurm.query_states(r["job_id"] for r in latest.values()) if check_active and latest else {}
    decisions = []
    for trial in plan.trials:
        result = finished_result(trial)
        record = latest.get(trial.name)
        state = states.get(record["job_id"]) if record else None
        if result:
            done = result.get("result", {})
            decisions.append(Decision(trial, FINISHED, f"finished ({done.get('epochs_done', '?')} epochs, "
                                                       f"global step {done.get('global_step', '?')})"))
        elif state is not None and state.active:
            decisions.append(Decision(trial, ACTIVE, f"job {record['job_id']} is {state.state}"))
        else:
            decisions.append(Decision(trial, SUBMIT, "resumes" if trial.run_dir.exists() else "new"))
    return decisions


def _bind_sources(plan: SubmissionPlan) -> List[Path]:
    paths = [plan.experiment_dir.parent, plan.log_dir]
    for trial in plan.trials:
        data = trial.resolved.config.data
        paths += [Path(p) for p in (data.train_dir, data.val_dir, data.shards_dir) if p]
    return paths + [Path(p) for p in plan.slurm.container_binds]


def _launch_settings(plan: SubmissionPlan, probe: bool) -> tuple:
    """(python command, sbatch parameters) for host or container mode."""
    return launch_settings(plan.slurm, plan.container, f"efnas-{plan.experiment}", _bind_sources(plan),
                           plan.log_dir, probe)


def launch_settings(slurm_cfg: SlurmConfig, container: Optional[Path], name: str, binds: Sequence[Path],
                    log_dir: Path, probe: bool) -> tuple:
    """(python command, sbatch parameters) of jobs run on the host or in ``container`` (version-probed first
    when ``probe``), with ``binds`` visible inside it."""
    if container is None:
        return slurm.host_python(), slurm.sbatch_parameters(slurm_cfg, name)
    if probe:
        image = containers.prepare(container, binds)
    else:
        containers.require_image(container)
        image = containers.Container(container, containers.bind_paths(binds), {})
    params = slurm.sbatch_parameters(slurm_cfg, name, setup=image.setup_lines(log_dir),
                                     teardown=image.teardown_lines())
    return image.python(), params


def training_job(trial: TrialPlan) -> TrainingJob:
    """The picklable job that trains (or resumes) ``trial`` in its run directory, on SLURM or in this process."""
    return TrainingJob(trial.resolved.values, str(trial.run_dir), trial.resolved.path,
                       training_fingerprint(trial.resolved.values))


def dry_run(plan: SubmissionPlan) -> str:
    """The sbatch script of this submission (finished trials left out); touches neither SLURM nor disk."""
    decisions = decide(plan, check_active=False)
    todo = [d for d in decisions if d.action == SUBMIT]
    python, params = _launch_settings(plan, probe=False)
    lines = [f"# efnas submit --dry_run: nothing submitted; experiment {plan.experiment} -> {plan.experiment_dir}"]
    if plan.cli_overrides:
        shared = "  ".join(f"{key}={json.dumps(value)} ({option.split('=')[0]})"
                           for key, value, option in plan.cli_overrides)
        lines.append(f"# command-line overrides{' (every trial)' if plan.is_sweep else ''}: {shared}")
    for decision in decisions:
        lines.append(f"# {decision.trial.label}: {decision.action} -> {decision.trial.run_dir}")
        if decision.trial.overrides:
            values = "  ".join(f"{key}={json.dumps(value)}" for key, value in decision.trial.overrides)
            lines.append(f"#   overrides: {values}")
    if not todo:
        lines.append("# every trial is finished: nothing would be submitted")
        return "\n".join(lines) + "\n"
    script = slurm.render_sbatch(params, plan.log_dir, python, len(todo))
    return "\n".join(lines) + "\n" + script


def submit_plan(plan: SubmissionPlan) -> tuple:
    """Submit every trial that is neither finished nor active; returns (decisions, submitted jobs)."""
    slurm.require_command("sbatch")
    decisions = decide(plan, check_active=True)
    todo = [d.trial for d in decisions if d.action == SUBMIT]
    if not todo:
        return decisions, []
    python, params = _launch_settings(plan, probe=True)
    new_dirs = [d for d in (plan.log_dir, plan.experiment_dir) if not d.exists()]
    plan.log_dir.mkdir(parents=True, exist_ok=True)
    plan.experiment_dir.mkdir(parents=True, exist_ok=True)
    existing = set(plan.log_dir.iterdir())
    executor = slurm.make_executor(plan.log_dir, plan.slurm.max_num_timeout, python, params)
    try:
        jobs = slurm.submit(executor, [training_job(t) for t in todo])
    except SubmitError:
        _remove_leftovers(plan.log_dir, existing, new_dirs)
        raise
    submitted = []
    for trial, job in zip(todo, jobs):
        logs = slurm.log_paths(plan.log_dir, job.job_id)
        submitted.append(SubmittedJob(trial, job.job_id, logs["stdout"], logs["stderr"]))
    append_records(plan.experiment_dir, [
        {"trial": s.trial.name, "job_id": s.job_id, "run_dir": str(s.trial.run_dir), "stdout": str(s.stdout),
         "stderr": str(s.stderr), "container": str(plan.container) if plan.container else None}
        for s in submitted])
    return decisions, submitted


def _remove_leftovers(log_dir: Path, existing: set, new_dirs: List[Path]) -> None:
    """After a refused sbatch: remove the pickles and script submitit wrote, and the folders made for them."""
    for path in set(log_dir.iterdir()) - existing:
        if path.is_file():
            path.unlink()
    for directory in new_dirs:  # innermost first
        if directory.is_dir() and not any(directory.iterdir()):
            directory.rmdir()


def format_outcome(plan: SubmissionPlan, decisions: Sequence[Decision], submitted: Sequence[SubmittedJob]) -> str:
    """What `efnas submit` prints: job ids, run directories and log paths; skipped trials and why."""
    lines = [f"experiment {plan.experiment}: {plan.experiment_dir}"]
    for decision in decisions:
        if decision.action != SUBMIT:
            lines.append(f"skipped {decision.trial.label}: {decision.detail}")
    if not submitted:
        lines.append("nothing submitted")
        return "\n".join(lines)
    if len(submitted) > 1:
        array_id = submitted[0].job_id.split("_")[0]
        lines.append(f"submitted job array {array_id}: {len(submitted)} trials, at most "
                     f"{plan.slurm.array_parallelism} running at once")
    for job in submitted:
        lines += [f"submitted {job.trial.label}: job {job.job_id}",
                  f"  run dir: {job.trial.run_dir}", f"  stdout:  {job.stdout}", f"  stderr:  {job.stderr}"]
    lines.append(f"logs and submitit pickles: {plan.log_dir}; follow with: efnas status {plan.experiment} "
                 f"--output_root {plan.experiment_dir.parent}")
    return "\n".join(lines)

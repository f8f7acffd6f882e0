"""Real `efnas submit` fast_mode trainings on the one-node SLURM cluster.

Every job of this module is submitted up front (module fixture) so the two
CPU slots stay busy while the tests drive interrupts and wait:

- ``plain``: uninterrupted reference run;
- ``preempted``: same config, preempted twice with ``job._interrupt()`` while
  ``max_num_timeout`` is 0 (so the preemptions must not count as timeouts);
- ``timeouts``: runs in "container" mode (a fake apptainer on PATH, host-side
  requeue), 5-minute limit so every USR2 counts as a timeout, max_num_timeout 1:
  the second timeout fails the job;
- ``sweep``: 2 seeds as one job array.
"""

from __future__ import annotations

import csv
import json
import time
from pathlib import Path

import pytest
import yaml

from launcher import slurm
from launcher.records import read_records

pytestmark = pytest.mark.slurm

STEPS = 3
EPOCHS = 6
ARTIFACTS = ("supernet_best.ckpt", "supernet_last.ckpt", "train_manifest.json", "fairness_counts.json",
             "eval_epe_history.csv", "eval_pool_3.json", "launch_result.json")


def _config(root: Path, data: Path, name: str, epochs: int, **slurm_values) -> Path:
    raw = {
        "experiment": {"name": name, "output_root": str(root / "out"), "seed": 5},
        "data": {"train_dir": str(data / "train"), "val_dir": str(data / "val"), "input_height": 32,
                 "input_width": 48, "num_workers": 1, "prefetch_batches": 2},
        "model": {"init_neurons": 8},
        "train": {"num_epochs": epochs, "batch_size": 2},
        "eval": {"pool_size": 3, "bn_recal_batches": 1},
        "early_stop": {"min_epochs_before_early_stop": 100},
        "fast_mode": {"steps_per_epoch": STEPS, "val_batches": 1, "eval_batch_size": 2},
        "slurm": dict({"partition": "debug", "gpus_per_node": 0, "cpus_per_task": 1, "mem_gb": 1,
                       "time_min": 60, "signal_delay_s": 30, "max_num_timeout": 0}, **slurm_values),
    }
    path = root / f"{name}.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def _history(run_dir: Path) -> list:
    path = run_dir / "eval_epe_history.csv"
    if not path.is_file():
        return []
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def _wait(predicate, what: str, timeout: float, logs: Path = None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(1)
    tail = ""
    if logs is not None:
        tail = "\n".join(f"--- {p}\n{p.read_text()[-3000:]}" for p in sorted(logs.glob("*_log.*")))
    pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}\n{tail}")


def _state(job_id: str) -> slurm.JobState:
    return slurm.query_states([job_id]).get(job_id, slurm.JobState("UNKNOWN", 0))


def _finished(job_id: str):
    state = _state(job_id)
    return state if state.state not in slurm.ACTIVE_STATES and state.state != "UNKNOWN" else None


def _interrupt(log_dir: Path, job_id: str, timeout: bool) -> None:
    from submitit.slurm.slurm import SlurmJob

    SlurmJob(folder=log_dir, job_id=job_id)._interrupt(timeout=timeout)


class Run:
    """One submitted experiment: its run directory, log folder and (last) job id."""

    def __init__(self, root: Path, name: str) -> None:
        self.experiment_dir = root / "out" / name
        self.log_dir = self.experiment_dir / "slurm"

    @property
    def records(self) -> list:
        return read_records(self.experiment_dir)

    @property
    def job_id(self) -> str:
        return self.records[-1]["job_id"]


class Jobs:
    """The module's submissions: ``jobs[name]`` is a Run; ``config``/``submit`` make more."""

    def __init__(self, root: Path, data: Path) -> None:
        from click.testing import CliRunner

        self.root, self.data, self.runner, self.runs = root, data, CliRunner(), {}

    def config(self, name: str, epochs: int, **slurm_values) -> Path:
        return _config(self.root, self.data, name, epochs, **slurm_values)

    def submit(self, *args, env=None) -> str:
        from edgeflownas.cli import main

        result = self.runner.invoke(main, [str(a) for a in ("submit",) + args], catch_exceptions=False, env=env)
        assert result.exit_code == 0, result.output
        return result.output

    def launch(self, name: str, *args, env=None) -> None:
        run = Run(self.root, name)
        run.output = self.submit(*args, env=env)
        self.runs[name] = run

    def __getitem__(self, name: str) -> Run:
        return self.runs[name]


@pytest.fixture(scope="module")
def jobs(slurm_cluster, tmp_path_factory, fake_apptainer_factory):
    """Submit every job of the module through `efnas submit` before the first test runs."""
    from edgeflownas.data.synth import write_dataset

    root = tmp_path_factory.mktemp("slurm_jobs")
    write_dataset(root / "fc2", 12, 4, seed=1, height=32, width=48)
    jobs = Jobs(root, root / "fc2")
    jobs.launch("plain", "--config", jobs.config("plain", EPOCHS), "--fast_mode")
    jobs.launch("preempted", "--config", jobs.config("preempted", EPOCHS), "--fast_mode")
    image = root / "efnas.sif"
    image.write_bytes(b"stand-in image")
    jobs.launch("timeouts", "--config", jobs.config("timeouts", 50, time_min=5, max_num_timeout=1), "--fast_mode",
                "--container", image, env={"PATH": fake_apptainer_factory(root / "fakebin")})
    jobs.launch("sweep", "--config", jobs.config("sweep", 2, array_parallelism=2), "--fast_mode",
                "--sweep", "seed=1,2")
    return jobs


def test_submit_prints_job_ids_run_dirs_and_logs(jobs):
    run = jobs["plain"]
    assert f"submitted plain: job {run.job_id}" in run.output
    assert f"run dir: {run.experiment_dir}" in run.output
    assert f"stdout:  {run.log_dir / (run.job_id + '_0_log.out')}" in run.output


def test_preempted_job_is_requeued_resumes_and_matches_the_uninterrupted_run(jobs):
    plain, run = jobs["plain"], jobs["preempted"]
    for attempt in range(2):
        done = len(_history(run.experiment_dir))
        _wait(lambda: len(_history(run.experiment_dir)) > done and _state(run.job_id).state == "RUNNING",
              f"'preempted' to finish an epoch (attempt {attempt})", 240, run.log_dir)
        _interrupt(run.log_dir, run.job_id, timeout=False)
        _wait(lambda: _state(run.job_id).requeues > attempt, "the requeue to show in sacct", 60, run.log_dir)
    for other in (run, plain):
        state = _wait(lambda: _finished(other.job_id), f"{other.experiment_dir.name} to end", 300, other.log_dir)
        assert state.state == "COMPLETED", other.log_dir
    assert _state(run.job_id).requeues == 2 and _state(plain.job_id).requeues == 0

    for name in ARTIFACTS:
        assert (plain.experiment_dir / name).exists(), name
    reference, resumed = _history(plain.experiment_dir), _history(run.experiment_dir)
    assert [int(r["global_step"]) for r in resumed] == [STEPS * e for e in range(1, EPOCHS + 1)]
    assert resumed == reference, "interrupted run differs from the uninterrupted one"
    starts = json.loads((run.experiment_dir / "train_manifest.json").read_text())["starts"]
    assert [s["mode"] for s in starts] == ["fresh", "resume", "resume"]
    assert all(s["global_step"] % STEPS == 0 for s in starts)
    result = json.loads((run.experiment_dir / "launch_result.json").read_text())["result"]
    assert result["global_step"] == STEPS * EPOCHS and result["epochs_done"] == EPOCHS


def test_second_timeout_beyond_max_num_timeout_fails_clearly(jobs):
    run = jobs["timeouts"]
    for attempt in range(2):
        done = len(_history(run.experiment_dir))
        _wait(lambda: len(_history(run.experiment_dir)) > done and _state(run.job_id).state == "RUNNING",
              f"'timeouts' to finish an epoch (attempt {attempt})", 300, run.log_dir)
        _interrupt(run.log_dir, run.job_id, timeout=True)
        if attempt == 0:
            _wait(lambda: _state(run.job_id).requeues == 1, "the first timeout's requeue", 60, run.log_dir)
    state = _wait(lambda: _finished(run.job_id), "the job to fail", 120, run.log_dir)
    assert state.state == "FAILED" and state.requeues == 1
    err = "".join(p.read_text() for p in run.log_dir.glob("*_log.err"))
    assert "this job is timed-out" in err
    assert "Job not requeued because: timed-out too many times." in err
    assert "requested from the host side" in err
    assert not (run.experiment_dir / "launch_result.json").exists()


def test_sweep_is_one_array_both_trials_finish_and_rerun_submits_nothing(jobs):
    run = jobs["sweep"]
    records = run.records
    assert [r["trial"] for r in records] == ["seed=1", "seed=2"]
    array_ids = {r["job_id"].split("_")[0] for r in records}
    assert len(array_ids) == 1 and [r["job_id"].split("_")[1] for r in records] == ["0", "1"]
    assert f"submitted job array {array_ids.pop()}: 2 trials" in run.output
    for record in records:
        state = _wait(lambda: _finished(record["job_id"]), f"trial {record['trial']}", 300, run.log_dir)
        assert state.state == "COMPLETED"
        assert (Path(record["run_dir"]) / "launch_result.json").is_file()
    again = jobs.submit("--config", jobs.config("sweep", 2, array_parallelism=2), "--fast_mode", "--sweep", "seed=1,2")
    assert "nothing submitted" in again and again.count("finished (2 epochs") == 2
    assert len(run.records) == 2


def test_status_reports_every_experiment(jobs, cli):
    root = jobs["plain"].experiment_dir.parent
    for name, state, requeues in (("plain", "COMPLETED", "0"), ("preempted", "COMPLETED", "2"),
                                  ("timeouts", "FAILED", "1")):
        result = cli("status", name, "--output_root", root)
        assert result.exit_code == 0, result.output
        row = result.output.splitlines()[1].split()
        assert row[:4] == [name, jobs[name].job_id, state, requeues], result.output
    rows = cli("status", "sweep", "--output_root", root).output.splitlines()[1:]
    assert [r.split()[0] for r in rows] == ["seed=1", "seed=2"]
    assert all(r.split()[2] == "COMPLETED" and r.split()[4] == "2" and r.split()[6] == "yes" for r in rows)

"""Real `efnas submit` fast_mode trainings on the one-node SLURM cluster.

All jobs go out up front, and one driver interrupts them as they progress, so
both CPU slots stay busy (each TensorFlow start costs ~30-50 s here):

- ``preempted``: preempted once with ``job._interrupt()`` after its first
  epoch, with ``max_num_timeout`` 0, so a preemption that counted as a timeout
  would fail it.  It must resume and end exactly like an uninterrupted run.
- ``timeouts``: container mode (a fake apptainer on PATH, so the requeue is
  done from the host side), with a 5-minute limit so every USR2 counts as a
  timeout, and ``max_num_timeout`` 1.  The first timeout is requeued, the
  second one fails the job.
- ``sweep``: seeds 5 and 6 as one job array.  Trial ``seed=5`` has exactly the
  training config of ``preempted``, so it is the uninterrupted reference.
- ``reset``: ``checkpoint.reset_early_stop_on_resume`` in the submitted config,
  patience 4 and a min_delta no later epoch can beat, so an uninterrupted run
  early-stops after epoch 5.  Preempted twice (after epoch 1, and again after
  the requeued job's next epoch); the reset must not fire on the requeues, so
  it still stops after epoch 5.
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
EPOCHS = 8
ARTIFACTS = ("supernet_best.ckpt", "supernet_last.ckpt", "train_manifest.json", "fairness_counts.json",
             "eval_epe_history.csv", "eval_pool_3.json", "launch_result.json")
DRIVE_TIMEOUT_S = 900
RESET_PATIENCE = 4


def _config(root: Path, name: str, epochs: int, sections: dict = None, **slurm_values) -> Path:
    data = root / "fc2"
    raw = {
        "experiment": {"name": name, "output_root": str(root / "out"), "seed": 5},
        "data": {"train_dir": str(data / "train"), "val_dir": str(data / "val"), "input_height": 32,
                 "input_width": 48, "num_workers": 1, "prefetch_batches": 2},
        "model": {"init_neurons": 8},
        "train": {"num_epochs": epochs, "batch_size": 2},
        "eval": {"pool_size": 3, "bn_recal_batches": 1},
        "early_stop": {"min_epochs_before_early_stop": 1000},
        "fast_mode": {"steps_per_epoch": STEPS, "val_batches": 1, "eval_batch_size": 2},
        "runtime": {"graph_optimizations": False},
        "slurm": dict({"partition": "debug", "gpus_per_node": 0, "cpus_per_task": 1, "mem_gb": 1,
                       "time_min": 60, "signal_delay_s": 30, "max_num_timeout": 0}, **slurm_values),
    }
    for section, values in (sections or {}).items():
        raw.setdefault(section, {}).update(values)
    path = root / f"{name}.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def _history(run_dir: Path) -> list:
    path = run_dir / "eval_epe_history.csv"
    if not path.is_file():
        return []
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def _starts(log_dir: Path, job_id: str) -> int:
    """How many times the job's callable has started (it prints one 'efnas job: run_dir=' line per start)."""
    log = log_dir / f"{job_id}_0_log.out"
    return log.read_text().count("efnas job: run_dir=") if log.is_file() else 0


class Run:
    """One submitted experiment: run directory, log folder, job id, what submit printed."""

    def __init__(self, root: Path, name: str, output: str) -> None:
        self.experiment_dir = root / "out" / name
        self.log_dir = self.experiment_dir / "slurm"
        self.output = output
        self.records = read_records(self.experiment_dir)
        self.job_id = self.records[-1]["job_id"]
        self.interrupts = 0

    def interrupt(self, timeout: bool) -> None:
        from submitit.slurm.slurm import SlurmJob

        SlurmJob(folder=self.log_dir, job_id=self.job_id)._interrupt(timeout=timeout)
        self.interrupts += 1

    def job_log(self) -> str:
        """What the job printed: the results on stdout (``.out``) and the training log on stderr (``.err``)."""
        return "".join((self.log_dir / f"{self.job_id}_0_log.{kind}").read_text() for kind in ("out", "err"))

    def logs(self) -> str:
        return "\n".join(f"--- {p}\n{p.read_text()[-2500:]}" for p in sorted(self.log_dir.glob("*_log.*")))


class Cluster:
    """The module's submissions plus the CLI runner that made them."""

    def __init__(self, root: Path) -> None:
        from click.testing import CliRunner

        self.root, self.runner, self.runs = root, CliRunner(), {}

    def submit(self, *args, env=None) -> str:
        from edgeflownas.cli import main

        result = self.runner.invoke(main, [str(a) for a in ("submit",) + args], catch_exceptions=False, env=env)
        assert result.exit_code == 0, result.output
        return result.output

    def launch(self, name: str, *args, env=None) -> None:
        self.runs[name] = Run(self.root, name, self.submit(*args, env=env))

    def job_ids(self) -> list:
        return [r["job_id"] for run in self.runs.values() for r in run.records]


def _drive(cluster: Cluster) -> dict:
    """Interrupt the jobs at the right moments; return every job's final state."""
    preempted, timeouts = cluster.runs["preempted"], cluster.runs["timeouts"]
    deadline = time.monotonic() + DRIVE_TIMEOUT_S
    while time.monotonic() < deadline:
        states = slurm.query_states(cluster.job_ids())
        running = {job_id for job_id, s in states.items() if s.state == "RUNNING"}
        if preempted.interrupts == 0 and preempted.job_id in running and _history(preempted.experiment_dir):
            preempted.interrupt(timeout=False)
        if timeouts.job_id in running:
            starts = _starts(timeouts.log_dir, timeouts.job_id)
            if timeouts.interrupts == 0 and _history(timeouts.experiment_dir):
                timeouts.interrupt(timeout=True)
            elif timeouts.interrupts == 1 and starts == 2:
                timeouts.interrupt(timeout=True)
        reset = cluster.runs["reset"]
        if reset.job_id in running:
            if reset.interrupts == 0 and _history(reset.experiment_dir):
                reset.interrupt(timeout=False)
            elif reset.interrupts == 1 and _starts(reset.log_dir, reset.job_id) == 2:
                # the requeued job has started: preempt it again.  Not after its next epoch: on a quiet machine
                # its three remaining epochs take about a second and it finished between two polls.
                reset.interrupt(timeout=False)
        if all(j in states and not states[j].active for j in cluster.job_ids()):
            return states
        time.sleep(0.5)
    pytest.fail(f"jobs still running after {DRIVE_TIMEOUT_S}s: {slurm.query_states(cluster.job_ids())}\n"
                + "\n".join(run.logs() for run in cluster.runs.values()))


@pytest.fixture(scope="module")
def cluster(slurm_cluster, tmp_path_factory, fake_apptainer_factory):
    """Submit every job through `efnas submit`, drive the interrupts, wait for all to end."""
    from edgeflownas.data.synth import write_dataset

    root = tmp_path_factory.mktemp("slurm_jobs")
    write_dataset(root / "fc2", 12, 4, seed=1, height=32, width=48)
    cluster = Cluster(root)
    cluster.launch("preempted", "--config", _config(root, "preempted", EPOCHS), "--fast_mode")
    image = root / "efnas.sif"
    image.write_bytes(b"stand-in image")
    cluster.launch("timeouts", "--config", _config(root, "timeouts", 500, time_min=5, max_num_timeout=1),
                   "--fast_mode", "--container", image, env={"PATH": fake_apptainer_factory(root / "fakebin")})
    cluster.launch("reset", "--config", _config(root, "reset", EPOCHS, {
        "early_stop": {"patience": RESET_PATIENCE, "min_delta": 1000.0, "min_epochs_before_early_stop": 0},
        "checkpoint": {"reset_early_stop_on_resume": True}}), "--fast_mode")
    cluster.launch("sweep", "--config", _config(root, "sweep", EPOCHS, array_parallelism=2), "--fast_mode",
                   "--sweep", "seed=5,6")
    cluster.states = _drive(cluster)
    return cluster


def test_submit_prints_job_ids_run_dirs_and_logs(cluster):
    run = cluster.runs["preempted"]
    assert f"submitted preempted: job {run.job_id}" in run.output
    assert f"run dir: {run.experiment_dir}" in run.output
    assert f"stdout:  {run.log_dir / (run.job_id + '_0_log.out')}" in run.output


def test_preempted_job_resumes_and_ends_exactly_like_the_uninterrupted_run(cluster):
    run = cluster.runs["preempted"]
    state = cluster.states[run.job_id]
    assert (state.state, state.requeues) == ("COMPLETED", 1), run.logs()
    reference_dir = cluster.runs["sweep"].experiment_dir / "seed=5"
    for name in ARTIFACTS:
        assert (run.experiment_dir / name).exists(), name
        assert (reference_dir / name).exists(), name
    resumed, reference = _history(run.experiment_dir), _history(reference_dir)
    assert [int(r["global_step"]) for r in resumed] == [STEPS * e for e in range(1, EPOCHS + 1)]
    assert resumed == reference, "the preempted run differs from the uninterrupted one"
    starts = json.loads((run.experiment_dir / "train_manifest.json").read_text())["starts"]
    assert [s["mode"] for s in starts] == ["fresh", "resume"]
    # The USR2 came after epoch 1: the job saved at the next step boundary (inside an epoch, or at the end
    # of the evaluation it was in) and submitit requeued it from there.
    assert starts[1]["global_step"] > STEPS
    out = run.job_log()
    assert "stop requested (SIGUSR2)" in out and "handing over to submitit's requeue" in out, run.logs()
    result = json.loads((run.experiment_dir / "launch_result.json").read_text())["result"]
    assert (result["global_step"], result["epochs_done"]) == (STEPS * EPOCHS, EPOCHS)


def test_second_timeout_beyond_max_num_timeout_fails_clearly(cluster):
    run = cluster.runs["timeouts"]
    state = cluster.states[run.job_id]
    assert (state.state, state.requeues) == ("FAILED", 1), run.logs()
    out = (run.log_dir / f"{run.job_id}_0_log.out").read_text()
    err = (run.log_dir / f"{run.job_id}_0_log.err").read_text()
    assert err.count("this job is timed-out") == 2
    assert "requested from the host side (0 remaining timeouts)" in out
    assert "Job not requeued because: timed-out too many times." in out + err
    assert not (run.experiment_dir / "launch_result.json").exists()


def test_sweep_is_one_array_both_trials_finish_and_rerun_submits_nothing(cluster):
    run = cluster.runs["sweep"]
    assert [r["trial"] for r in run.records] == ["seed=5", "seed=6"]
    array_id, tasks = run.records[0]["job_id"].split("_")[0], [r["job_id"] for r in run.records]
    assert tasks == [f"{array_id}_0", f"{array_id}_1"]
    assert f"submitted job array {array_id}: 2 trials" in run.output
    for record in run.records:
        assert cluster.states[record["job_id"]].state == "COMPLETED"
        assert json.loads((Path(record["run_dir"]) / "launch_result.json").read_text())["result"]["epochs_done"] == EPOCHS
    again = cluster.submit("--config", _config(cluster.root, "sweep", EPOCHS, array_parallelism=2), "--fast_mode",
                           "--sweep", "seed=5,6")
    assert "nothing submitted" in again and again.count(f"finished ({EPOCHS} epochs") == 2
    assert len(read_records(run.experiment_dir)) == 2


def test_status_reports_state_requeues_epochs_and_best_epe(cluster, cli):
    root = cluster.root / "out"
    for name, state, requeues, finished in (("preempted", "COMPLETED", "1", "yes"), ("timeouts", "FAILED", "1", "no")):
        result = cli("status", name, "--output_root", root)
        assert result.exit_code == 0, result.output
        row = result.output.splitlines()[1].split()
        assert row[:4] == [name, cluster.runs[name].job_id, state, requeues] and row[7] == finished, result.output
    preempted = cli("status", "preempted", "--output_root", root).output.splitlines()[1].split()
    best = [float(r["mean_epe_3"]) for r in _history(cluster.runs["preempted"].experiment_dir) if r["new_best"] == "1"][-1]
    assert preempted[4] == str(EPOCHS) and preempted[5] == f"{best:.4f}"
    rows = cli("status", "sweep", "--output_root", root).output.splitlines()[1:3]  # then each run's log lines
    assert [r.split()[0] for r in rows] == ["seed=5", "seed=6"]
    assert all(r.split()[2:5] == ["COMPLETED", "0", str(EPOCHS)] for r in rows)



def test_requeued_job_applies_reset_early_stop_once_and_stops_at_the_uninterrupted_epoch(cluster):
    run = cluster.runs["reset"]
    state = cluster.states[run.job_id]
    assert (state.state, state.requeues) == ("COMPLETED", 2), run.logs()
    # Only epoch 1 is an improvement (min_delta 1000), so patience 4 stops an uninterrupted run after epoch 5.
    stop_epoch = 1 + RESET_PATIENCE
    assert [int(r["epoch"]) for r in _history(run.experiment_dir)] == list(range(1, stop_epoch + 1)), run.logs()
    result = json.loads((run.experiment_dir / "launch_result.json").read_text())["result"]
    assert (result["epochs_done"], result["stopped_early"], result["best_epoch"]) == (stop_epoch, True, 1)
    starts = json.loads((run.experiment_dir / "train_manifest.json").read_text())["starts"]
    assert [s["mode"] for s in starts] == ["fresh", "resume", "resume"]
    out = run.job_log()
    assert out.count("reset_early_stop_on_resume: already applied") == 2, run.logs()
    assert "early-stop counters and best metric start afresh" not in out
    assert f"early stop after epoch {stop_epoch}" in out

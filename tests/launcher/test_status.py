"""`efnas status` from the submission log and run directories (sacct absent here: states unknown)."""

from __future__ import annotations

import json

from launcher.records import append_records, latest_by_trial, read_records
from launcher.status import experiment_status, format_status, history_summary


def _history(run_dir, rows, new_best=True):
    """eval_epe_history.csv with rows (epoch, mean EPE[, new_best]); every epoch a new best unless marked 0."""
    run_dir.mkdir(parents=True)
    header = "epoch,global_step,mean_epe_12,std_epe_12" + (",new_best" if new_best else "")
    lines = [header] + [f"{r[0]},{r[0] * 4},{r[1]},0.1" + (f",{r[2] if len(r) > 2 else 1}" if new_best else "")
                        for r in rows]
    (run_dir / "eval_epe_history.csv").write_text("\n".join(lines) + "\n")


def test_history_gives_last_epoch_and_best_mean_epe(tmp_path):
    _history(tmp_path / "run", [(1, 3.5), (2, 2.25), (3, 2.5, 0)])
    assert history_summary(tmp_path / "run") == (3, 2.25, "mean_epe_12")
    assert history_summary(tmp_path / "none") == (None, None, None)


def test_best_is_the_runs_own_best_not_the_column_minimum(tmp_path):
    # 2.2 is below 2.25 by less than early_stop.min_delta: the trainer did not count it as a new best.
    _history(tmp_path / "run", [(1, 3.5), (2, 2.25), (3, 2.2, 0)])
    assert history_summary(tmp_path / "run") == (3, 2.25, "mean_epe_12")


def test_history_without_new_best_takes_the_checkpoint_best_and_the_plan_names_the_column(tmp_path):
    run = tmp_path / "old"
    _history(run, [(1, 3.5), (2, 2.25), (3, 2.2)], new_best=False)
    (run / "supernet_last.ckpt").mkdir()
    (run / "supernet_last.ckpt" / "state.json").write_text(json.dumps({"global_step": 12, "best_metric": 2.25}))
    assert history_summary(run) == (3, 2.25, "mean_epe_12")
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    (fresh / "train_manifest.json").write_text(json.dumps({"eval": {"pool_size": 3}}))
    assert history_summary(fresh) == (None, None, "mean_epe_3")


def test_latest_record_per_trial_wins(tmp_path):
    append_records(tmp_path, [{"trial": "a", "job_id": "1_0"}, {"trial": "b", "job_id": "1_1"}])
    append_records(tmp_path, [{"trial": "a", "job_id": "7"}])
    assert len(read_records(tmp_path)) == 3
    assert {k: v["job_id"] for k, v in latest_by_trial(read_records(tmp_path)).items()} == {"a": "7", "b": "1_1"}


def test_table_without_sacct_shows_artifacts_and_says_why_states_are_unknown(cli, tmp_path, monkeypatch):
    experiment = tmp_path / "exp"
    _history(experiment / "seed=1", [(1, 3.0), (2, 2.0)])
    (experiment / "seed=1" / "launch_result.json").write_text(json.dumps({"fingerprint": "x"}))
    append_records(experiment, [{"trial": "seed=1", "job_id": "5_0", "run_dir": str(experiment / "seed=1")},
                                {"trial": "seed=2", "job_id": "5_1", "run_dir": str(experiment / "seed=2")}])
    monkeypatch.setenv("PATH", str(tmp_path))
    rows, note = experiment_status(experiment)
    assert [(r.trial, r.job_id, r.epoch, r.best_epe, r.finished) for r in rows] == [
        ("seed=1", "5_0", 2, 2.0, True), ("seed=2", "5_1", None, None, False)]
    assert "sacct not found" in note
    result = cli("status", "exp", "--output_root", tmp_path)
    assert result.exit_code == 0, result.output
    header, first, second = result.output.splitlines()[:3]
    assert header.split() == ["TRIAL", "JOB", "STATE", "REQUEUES", "EPOCH", "BEST_MEAN_EPE_12", "LAST_STEP",
                              "FINISHED", "RUN_DIR"]
    assert first.split()[:8] == ["seed=1", "5_0", "UNKNOWN", "-", "2", "2.0000", "-", "yes"]
    assert format_status(rows, note).endswith("note: sacct not found on PATH: SLURM states unknown")


def test_unknown_experiment_is_a_clear_error(cli, tmp_path):
    result = cli("status", "never_submitted", "--output_root", tmp_path)
    assert result.exit_code == 1
    assert "'never_submitted' is neither a directory nor an experiment under" in result.output


def _local_run(run_dir, planned=3, step=None):
    _history(run_dir, [(1, 3.0), (2, 2.5)])
    (run_dir / "train_manifest.json").write_text(json.dumps({"resolved_config": {"train": {"num_epochs": planned}}}))
    if step is not None:
        (run_dir / "supernet_last.ckpt").mkdir()
        (run_dir / "supernet_last.ckpt" / "state.json").write_text(json.dumps({"global_step": step}))


def test_status_of_a_local_run_shows_epoch_last_step_lock_and_logs(cli, tmp_path):
    from edgeflownas.locks import exclusive_lock

    run = tmp_path / "runs" / "local"
    _local_run(run, step=8)
    result = cli("status", run)
    assert result.exit_code == 0, result.output
    header, row = result.output.splitlines()[:2]
    assert row.split()[:8] == ["local", "-", "IDLE", "-", "2", "2.5000", "8", "no"]
    assert f"local: train.log {run / 'train.log'}" in result.output
    with exclusive_lock(run, "efnas train (test)"):
        held = cli("status", run, "--json")
    doc = json.loads(held.output)
    assert held.exit_code == 0 and doc["note"] == ""
    (entry,) = doc["runs"]
    assert entry["state"] == "RUNNING" and entry["last_step"] == 8 and entry["epoch"] == 2
    assert "efnas train (test)" in entry["lock_holder"] and entry["logs"]["train.log"] == str(run / "train.log")
    assert json.loads(cli("status", run, "--json").output)["runs"][0]["lock_holder"] is None  # released


def test_status_of_an_experiment_name_lists_its_local_runs(cli, tmp_path):
    _local_run(tmp_path / "exp" / "seed=1", planned=2)
    _local_run(tmp_path / "exp" / "seed=2", planned=5)
    (tmp_path / "exp" / "notes").mkdir()
    result = cli("status", "exp", "--output_root", tmp_path, "--json")
    assert result.exit_code == 0, result.output
    runs = json.loads(result.output)["runs"]
    assert [(r["trial"], r["finished"], r["job_id"]) for r in runs] == [("seed=1", True, None), ("seed=2", False, None)]
    empty = cli("status", tmp_path / "exp" / "notes")
    assert empty.exit_code == 1 and "no runs found in" in empty.output


def _damaged_experiment(tmp_path):
    """exp/good (2 epochs) and exp/bad, whose history has a byte that is not UTF-8 at a known offset."""
    _local_run(tmp_path / "exp" / "good", planned=2)
    _local_run(tmp_path / "exp" / "bad", planned=2)
    path = tmp_path / "exp" / "bad" / "eval_epe_history.csv"
    data = path.read_bytes()
    cut = data.index(b"\n") + 3
    path.write_bytes(data[:cut] + b"\xff" + data[cut:])
    return path, cut


def test_a_damaged_run_is_one_line_and_the_others_are_still_shown(cli, tmp_path):
    path, cut = _damaged_experiment(tmp_path)
    result = cli("status", "exp", "--output_root", tmp_path)
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    lines = result.output.splitlines()
    rows = {line.split()[0]: line.split() for line in lines[1:3]}
    assert rows["good"][:8] == ["good", "-", "IDLE", "-", "2", "2.5000", "-", "yes"]
    assert rows["bad"][:8] == ["bad", "-", "IDLE", "-", "-", "-", "-", "no"]
    damaged = [line for line in lines if ": damaged: " in line]
    assert len(damaged) == 1 and damaged[0].startswith(f"bad: damaged: {path} is damaged: byte {cut} "), damaged


def test_a_damaged_run_in_json_is_marked_and_the_exit_code_says_so(cli, tmp_path):
    path, cut = _damaged_experiment(tmp_path)
    result = cli("status", "exp", "--output_root", tmp_path, "--json")
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    runs = {row["trial"]: row for row in json.loads(result.stdout)["runs"]}
    assert runs["good"]["damaged"] is None and runs["good"]["epoch"] == 2 and runs["good"]["best_epe"] == 2.5
    assert runs["bad"]["damaged"].startswith(f"{path} is damaged: byte {cut} ") and runs["bad"]["epoch"] is None
    assert result.stderr.strip() == f"bad: damaged: {runs['bad']['damaged']}"


def test_a_submitted_experiment_with_a_damaged_run_shows_the_others(cli, tmp_path, monkeypatch):
    path, _ = _damaged_experiment(tmp_path)
    experiment = tmp_path / "exp"
    append_records(experiment, [{"trial": name, "job_id": f"5_{i}", "run_dir": str(experiment / name)}
                                for i, name in enumerate(("bad", "good"))])
    monkeypatch.setenv("PATH", str(tmp_path))  # no sacct
    rows, _ = experiment_status(experiment)
    assert [(r.trial, r.epoch, r.damaged is not None) for r in rows] == [("bad", None, True), ("good", 2, False)]
    assert rows[0].damaged.startswith(f"{path} is damaged")
    assert cli("status", "exp", "--output_root", tmp_path).exit_code == 1
    assert cli("status", experiment / "good").exit_code == 0

"""Re-running a submission: finished trials are skipped, active ones too, the rest resume."""

from __future__ import annotations

import copy
import json

import pytest

from edgeflownas.errors import SubmitError
from launcher import slurm
from launcher import submit as submission
from launcher.plan import build_plan, training_fingerprint
from launcher.records import append_records


def _finish(trial, fingerprint=None):
    trial.run_dir.mkdir(parents=True, exist_ok=True)
    (trial.run_dir / "launch_result.json").write_text(json.dumps(
        {"fingerprint": fingerprint or training_fingerprint(trial.resolved.values),
         "result": {"epochs_done": 2, "global_step": 8}}))


def test_finished_active_and_unfinished_trials(launch_config, monkeypatch):
    plan = build_plan(launch_config(), {}, ["seed=1,2,3,4"], None)
    done, changed, running, partial = plan.trials
    _finish(done)
    _finish(changed, fingerprint="trained under another config")
    partial.run_dir.mkdir(parents=True)
    append_records(plan.experiment_dir, [{"trial": t.name, "job_id": f"9_{i}"} for i, t in enumerate(plan.trials)])
    monkeypatch.setattr(slurm, "query_states", lambda ids: {
        "9_0": slurm.JobState("COMPLETED", 0), "9_1": slurm.JobState("COMPLETED", 0),
        "9_2": slurm.JobState("RUNNING", 1), "9_3": slurm.JobState("FAILED", 2)})
    decisions = submission.decide(plan, check_active=True)
    assert [(d.trial.name, d.action, d.detail) for d in decisions] == [
        ("seed=1", "finished", "finished (2 epochs, global step 8)"),
        ("seed=2", "submit", "resumes"),
        ("seed=3", "active", "job 9_2 is RUNNING"),
        ("seed=4", "submit", "resumes"),
    ]


def test_slurm_settings_and_the_resume_flag_do_not_change_the_fingerprint(launch_config):
    a = build_plan(launch_config(), {}, [], None).trials[0].resolved.values
    b = build_plan(launch_config(slurm={"time_min": 5}), {"checkpoint.resume": True}, [], None).trials[0].resolved.values
    c = build_plan(launch_config(), {"train.lr": 3e-4}, [], None).trials[0].resolved.values
    assert training_fingerprint(a) == training_fingerprint(b) != training_fingerprint(c)


@pytest.mark.parametrize("key, before, other", [("model.residual_init", "random", "identity"),
                                                 ("train.lr_warmup_steps", 0, 4)])
def test_a_key_added_later_at_its_earlier_behaviour_does_not_change_the_fingerprint(launch_config, key, before, other):
    """model.residual_init and train.lr_warmup_steps appeared after runs were recorded: at what every run did
    before ('random', no warm-up) the fingerprint is the one a config without the key had; another value computes
    something else."""
    section, leaf = key.split(".")
    now = build_plan(launch_config(), {}, [], None).trials[0].resolved.values
    assert now[section][leaf] == before
    earlier = copy.deepcopy(now)
    del earlier[section][leaf]
    changed = build_plan(launch_config(), {key: other}, [], None).trials[0].resolved.values
    assert training_fingerprint(now) == training_fingerprint(earlier) != training_fingerprint(changed)


def test_dry_run_leaves_out_finished_trials(launch_config):
    plan = build_plan(launch_config(), {}, ["seed=1,2"], None)
    _finish(plan.trials[0])
    text = submission.dry_run(plan)
    assert "# seed=1: finished" in text and "# seed=2: submit" in text
    assert "#SBATCH --array" not in text, "one trial left: a plain job, not an array"


def test_a_sweep_cannot_reuse_a_single_run_experiment(launch_config):
    plan = build_plan(launch_config(), {}, ["seed=1,2"], None)
    append_records(plan.experiment_dir, [{"trial": None, "job_id": "4"}])
    with pytest.raises(SubmitError, match="already holds a single run"):
        submission.decide(plan, check_active=False)


def _with_manifest(trial, data_dir):
    """A finished record plus the data section the trainer would have written into the run's manifest."""
    from edgeflownas.data.loader import open_source
    from edgeflownas.data.shards import ids_digest

    _finish(trial)
    data = {}
    for split in ("train", "val"):
        source = open_source(trial.resolved.config.data, split)
        data[f"{split}_sample_ids_sha256"] = ids_digest(source.sample_ids)
        data[f"{split}_content_sha256"] = source.content_digest()
    (trial.run_dir / "train_manifest.json").write_text(json.dumps({"data": data}))


def test_a_finished_run_stays_finished_when_checkout_and_data_move_but_not_on_other_data(launch_config, tmp_path):
    from edgeflownas.data.synth import write_dataset
    from launcher.plan import finished_result

    write_dataset(tmp_path / "a", train=3, val=2, seed=1, height=48, width=64)
    here = build_plan(launch_config(data={"train_dir": str(tmp_path / "a/train"), "val_dir": str(tmp_path / "a/val")}),
                      {}, [], None).trials[0]
    _with_manifest(here, tmp_path / "a")
    assert finished_result(here) is not None

    (tmp_path / "a").rename(tmp_path / "moved")  # the same bytes elsewhere, the run in another output root
    moved = build_plan(launch_config(data={"train_dir": str(tmp_path / "moved/train"),
                                           "val_dir": str(tmp_path / "moved/val")}),
                       {"experiment.output_root": str(tmp_path / "elsewhere")}, [], None).trials[0]
    assert training_fingerprint(moved.resolved.values) == training_fingerprint(here.resolved.values)
    moved.run_dir.parent.mkdir(parents=True)
    here.run_dir.rename(moved.run_dir)
    assert finished_result(moved) is not None

    write_dataset(tmp_path / "b", train=3, val=2, seed=2, height=48, width=64)  # same FC2 names, other pictures
    other = build_plan(launch_config(data={"train_dir": str(tmp_path / "b/train"), "val_dir": str(tmp_path / "b/val")}),
                       {"experiment.output_root": str(tmp_path / "elsewhere")}, [], None).trials[0]
    assert other.run_dir == moved.run_dir
    assert finished_result(other) is None, "a run trained on other pictures is not finished for this data"

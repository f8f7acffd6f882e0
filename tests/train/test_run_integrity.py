"""A run never trains on, selects by, or resumes into numbers that do not belong together.

One tiny real run (1 of 3 epochs) is trained once; each test works on a copy
of it (or of its data) and damages, moves or reuses it in one way.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import yaml

from edgeflownas.config import resolve_mapping
from edgeflownas.locks import exclusive_lock
from edgeflownas.train.early_stop import EarlyStopper, EarlyStopState
from edgeflownas.train.session import initial_state

pytestmark = pytest.mark.slow

RUN = {
    "experiment": {"name": "tiny", "seed": 5},
    "data": {"input_height": 32, "input_width": 48, "num_workers": 1, "prefetch_batches": 2},
    "model": {"init_neurons": 8},
    "train": {"num_epochs": 3, "batch_size": 2, "steps_per_epoch": 2, "lr": 0.001, "log_every_steps": 1000},
    "eval": {"bn_recal_batches": 1, "batch_size": 2, "val_batches": 1, "pool_size": 3},
    "early_stop": {"min_epochs_before_early_stop": 0},
    "runtime": {"deterministic": True, "graph_optimizations": False},
}


def _raw(output_root, data: Path) -> dict:
    raw = json.loads(json.dumps(RUN))
    raw["experiment"]["output_root"] = str(output_root)
    raw["data"].update(train_dir=str(data / "train"), val_dir=str(data / "val"))
    return raw


@pytest.fixture(scope="module")
def fc2(tmp_path_factory) -> Path:
    """Synthetic FC2 root: train/ 8, val/ 4 samples at 32x48 (read-only)."""
    from edgeflownas.data.synth import write_dataset

    root = tmp_path_factory.mktemp("integrity_data") / "fc2"
    write_dataset(root, train=8, val=4, seed=1, height=32, width=48)
    return root


@pytest.fixture(scope="module")
def trained(fc2, tmp_path_factory):
    """(data root, run directory) of a run that trained epoch 1 of 3 (read-only: tests copy it)."""
    from edgeflownas.train.api import run_training

    runs = tmp_path_factory.mktemp("integrity_runs")
    result = run_training(resolve_mapping(_raw(runs, fc2), {"train.max_epochs": 1}))
    assert result.epochs_done == 1
    return fc2, result.run_dir


@pytest.fixture
def copy_run(trained, tmp_path):
    """Copy the trained run under tmp_path/runs; returns (its config file, its run directory)."""

    def make(data: Path = None, output_root=None) -> tuple:
        output_root = output_root or tmp_path / "runs"
        run_dir = Path(output_root) / "tiny"
        if not run_dir.is_absolute():
            run_dir = tmp_path / run_dir
        shutil.copytree(trained[1], run_dir)
        config = tmp_path / "run.yaml"
        config.write_text(yaml.safe_dump(_raw(output_root, data or trained[0])))
        return config, run_dir

    return make


def _history(run_dir: Path) -> list:
    with open(run_dir / "eval_epe_history.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def _manifest(run_dir: Path) -> dict:
    return json.loads((run_dir / "train_manifest.json").read_text())


def test_resume_with_a_changed_val_split_is_refused(cli, trained, copy_run, tmp_path):
    other = tmp_path / "other_val"
    shutil.copytree(trained[0] / "val", other)
    for name in sorted(os.listdir(other))[:3]:  # one sample = img_0, img_1, flow_01
        (other / name).unlink()
    config, run_dir = copy_run()
    result = cli("train", "--config", config, "--resume", "--val_dir", other)
    assert result.exit_code == 1, result.output
    assert "the val split is not the one it was trained on" in result.output
    assert "checkpoint: 4 samples" in result.output and "now: 3 samples" in result.output
    assert "--experiment_name NEW --resume_experiment_name tiny" in result.output
    assert len(_history(run_dir)) == 1 and len(_manifest(run_dir)["starts"]) == 1


def test_resume_with_another_val_set_of_the_same_ids_is_refused(cli, trained, copy_run, tmp_path):
    from edgeflownas.data.synth import write_dataset

    other = tmp_path / "other_seed"
    write_dataset(other, train=8, val=4, seed=2, height=32, width=48)  # the same FC2 names, other pictures
    assert sorted(os.listdir(other / "val")) == sorted(os.listdir(trained[0] / "val"))
    config, run_dir = copy_run()
    result = cli("train", "--config", config, "--resume", "--val_dir", other / "val", "--max_epochs", "1")
    assert result.exit_code == 1, result.output
    assert "the val split has the sample ids it was trained on but other content" in result.output
    assert f"now: {other / 'val'}" in result.output
    assert len(_history(run_dir)) == 1 and len(_manifest(run_dir)["starts"]) == 1


def test_resume_with_the_same_data_moved_is_accepted_and_every_start_is_kept(cli, trained, copy_run, tmp_path):
    moved = tmp_path / "moved_fc2"
    shutil.copytree(trained[0], moved)
    config, run_dir = copy_run(data=moved)
    result = cli("train", "--config", config, "--resume", "--max_epochs", "1")
    assert result.exit_code == 0, result.output
    assert (f"data.val_dir moved from {trained[0] / 'val'} to {moved / 'val'} (same sample ids and content)"
            in result.output)
    assert [int(row["epoch"]) for row in _history(run_dir)] == [1, 2]
    starts = _manifest(run_dir)["starts"]
    assert [s["mode"] for s in starts] == ["fresh", "resume"]
    assert [s["data"]["val_dir"] for s in starts] == [str(trained[0] / "val"), str(moved / "val")]
    assert starts[0]["data"]["val_sample_ids_sha256"] == starts[1]["data"]["val_sample_ids_sha256"]
    assert [s["run_dir"] for s in starts] == [str(trained[1]), str(run_dir)]  # the copy was first trained there
    assert all(s["hostname"] and s["time"] for s in starts)


@pytest.mark.parametrize("damage, named", [
    ("supernet_last.ckpt/state.json", "state.json missing"),
    ("supernet_last.ckpt/model.index", "model.index missing"),
    ("supernet_last.ckpt", "supernet_last.ckpt is missing"),
])
def test_resume_without_a_complete_last_is_refused_and_keeps_the_results(cli, copy_run, damage, named):
    config, run_dir = copy_run()
    target = run_dir / damage
    shutil.rmtree(target) if target.is_dir() else target.unlink()
    history = (run_dir / "eval_epe_history.csv").read_text()
    result = cli("train", "--config", config, "--resume")
    assert result.exit_code == 1, result.output
    assert named in result.output and "nothing was changed" in result.output
    assert "--resume --resume_from best" in result.output and "--overwrite" in result.output
    assert (run_dir / "eval_epe_history.csv").read_text() == history
    assert (run_dir / "supernet_best.ckpt" / "model.index").is_file()


def test_plain_train_into_a_run_with_history_is_refused(cli, copy_run):
    config, run_dir = copy_run()
    shutil.rmtree(run_dir / "supernet_last.ckpt")
    result = cli("train", "--config", config)
    assert result.exit_code == 1, result.output
    assert "holds results (supernet_best.ckpt, eval_epe_history.csv, fairness_counts.json)" in result.output
    assert "cannot be started afresh" in result.output
    assert len(_history(run_dir)) == 1


def test_overwrite_moves_the_old_run_aside_and_starts_afresh(cli, copy_run):
    config, run_dir = copy_run()
    shutil.rmtree(run_dir / "supernet_last.ckpt")
    old_history = (run_dir / "eval_epe_history.csv").read_text()
    result = cli("train", "--config", config, "--overwrite", "--max_epochs", "1")
    assert result.exit_code == 0, result.output
    aside = list(run_dir.parent.glob("tiny.old-*"))
    assert len(aside) == 1 and f"moved, untouched, to {aside[0]}" in result.output
    assert (aside[0] / "eval_epe_history.csv").read_text() == old_history
    assert (aside[0] / "supernet_best.ckpt" / "model.index").is_file()
    assert [s["mode"] for s in _manifest(run_dir)["starts"]] == ["fresh"]


def test_resume_from_another_working_directory_does_not_start_a_second_run(cli, copy_run, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config, run_dir = copy_run(output_root="runs")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    result = cli("train", "--config", config, "--resume")
    assert result.exit_code == 1, result.output
    assert f"no run directory at {elsewhere / 'runs' / 'tiny'}" in result.output
    assert "'runs' is relative to the current directory" in result.output
    assert list(elsewhere.iterdir()) == []
    recorded = _manifest(run_dir)["starts"][0]
    assert Path(recorded["run_dir"]).is_absolute() and Path(recorded["data"]["train_dir"]).is_absolute()


def test_resume_from_another_working_directory_finds_the_data_where_the_run_recorded_it(cli, trained, copy_run,
                                                                                          tmp_path, monkeypatch):
    config, run_dir = copy_run()
    raw = yaml.safe_load(config.read_text())
    raw["data"].update(train_dir="fc2/train", val_dir="fc2/val")  # relative: the run started beside fc2/
    config.write_text(yaml.safe_dump(raw))
    monkeypatch.chdir(tmp_path)
    result = cli("train", "--config", config, "--resume", "--max_epochs", "1")
    assert result.exit_code == 0, result.output
    assert (f"notice: data.val_dir 'fc2/val' does not exist from {tmp_path}; using {trained[0] / 'val'}"
            in result.output)
    assert [int(row["epoch"]) for row in _history(run_dir)] == [1, 2]


def test_a_second_train_on_a_run_directory_in_use_is_refused_naming_the_holder(cli, copy_run):
    config, run_dir = copy_run()
    with exclusive_lock(run_dir, "efnas train tiny"):
        result = cli("train", "--config", config, "--resume")
    assert result.exit_code == 1, result.output
    assert f"{run_dir} is in use by pid {os.getpid()} on host" in result.output
    assert len(_history(run_dir)) == 1


def test_a_refused_start_leaves_nothing_behind(cli, fc2, tmp_path):
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump(_raw(tmp_path / "runs", fc2)))
    result = cli("train", "--config", config, "--batch_size", "16")  # 8 train samples: not one batch
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert not (tmp_path / "runs").exists()


class _Evaluator:
    picture_batch = None

    def __init__(self, means):
        self.means = iter(means)

    def evaluate(self, sess, pool):
        mean = next(self.means)
        return SimpleNamespace(mean=mean, std=0.0, by_name=lambda: {})


def test_best_is_the_early_stop_improvement_everywhere(tmp_path, monkeypatch):
    from edgeflownas.config_types import EarlyStopConfig
    from edgeflownas.nas.eval_pool import build_pool
    from edgeflownas.nas.fair_sampler import empty_counts
    from edgeflownas.train.state import EpochStats, TrainState
    from edgeflownas.train.trainer import Trainer

    trainer = Trainer.__new__(Trainer)
    lines, saved = [], []
    stopper = EarlyStopper(EarlyStopConfig(patience=5, min_delta=0.002, min_epochs_before_early_stop=0))
    trainer.__dict__.update(plan=SimpleNamespace(eval_every=1), evaluator=_Evaluator([1.0, 0.999, 0.997]),
                            pool=tuple(build_pool(3, 3)), stopper=stopper, sess=None, run_dir=tmp_path, seed=3, fixed_arch=None,
                            state=TrainState(0, 0, empty_counts(), [], None, None), log=lines.append, _zero_flow=2.0)
    monkeypatch.setattr(Trainer, "save_checkpoints", lambda self, best: saved.append(best))
    monkeypatch.setattr(Trainer, "write_artifacts", lambda self: None)
    monkeypatch.setattr(Trainer, "write_scalars", lambda self, row: None)
    for epoch in (1, 2, 3):
        trainer.end_epoch(epoch, EpochStats(steps=1, loss=1.0, lr=1e-3))
    # 0.999 is lower than 1.0 but not by min_delta: neither early stop nor best counts it.
    assert saved == [True, False, True]
    assert [row["new_best"] for row in trainer.state.history] == [1, 0, 1]  # the CSV's new_best column
    assert [line for line in lines if "(new best)" in line] == [lines[i] for i in (1, 5)]
    assert (trainer.state.best_epoch, trainer.state.best_metric) == (3, 0.997)
    assert (stopper.state.best_epoch, stopper.state.best) == (3, 0.997)


def test_reset_early_stop_applies_once_not_on_every_requeue():
    raw = _raw("/tmp/unused", Path("/tmp/unused"))
    asked = resolve_mapping(raw, {"checkpoint.resume": True, "checkpoint.reset_early_stop_on_resume": True})
    doc = {"global_step": 6, "epoch": 3, "next_batch_index": 0, "fairness_counts": [[6] * 3] * 9, "history": [],
           "best_metric": 1.0, "best_epoch": 1,
           "early_stop": EarlyStopState(best=1.0, best_epoch=1, bad_epochs=2).to_dict()}
    state, stopper = initial_state("resume", doc, asked, print)  # the first --resume that asks: reset
    assert stopper.state.bad_epochs == 0 and state.best_metric is None
    stopper.update(4, 2.0)
    stopper.update(5, 2.0)
    requeued = dict(doc, epoch=5, early_stop=stopper.state.to_dict())
    lines = []
    state, again = initial_state("resume", requeued, asked, lines.append)  # the requeue: same request, no reset
    assert (again.state.best, again.state.best_epoch, again.state.bad_epochs) == (2.0, 4, 1)
    assert "already applied" in lines[0]
    changed = resolve_mapping(raw, {"checkpoint.resume": True, "checkpoint.reset_early_stop_on_resume": True,
                                    "early_stop.patience": 30})
    _, renewed = initial_state("resume", requeued, changed, print)  # asked again under new settings: reset
    assert renewed.state.bad_epochs == 0 and renewed.state.best is None
    _, fresh = initial_state("fresh", None, asked, print)  # a submitted run's first start already counts as done
    assert fresh.state.reset_key == again.state.reset_key is not None
    assert np.array_equal(state.counts, np.asarray(doc["fairness_counts"]))

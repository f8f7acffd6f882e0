"""What a run refuses before it builds anything: bad data, overwriting, resuming under another config."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from edgeflownas.config import resolve_mapping
from edgeflownas.train import checkpoint
from edgeflownas.train.api import check_resumable, config_differences
from edgeflownas.train.plan import make_plan
from edgeflownas.train.session import initial_state


def _write_config(tmp_path, raw):
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def _fake_last_checkpoint(raw, epoch=3, early_stop=None, drop_model_keys=()):
    """A run directory whose supernet_last.ckpt was written under ``raw`` (variables are dummies).

    ``drop_model_keys``: model keys its recorded config lacks, as in a checkpoint older than those keys.
    """
    resolved = resolve_mapping(raw)
    plan = make_plan(resolved.config, 16, 4)
    run_dir = Path(resolved.config.experiment.output_root) / resolved.config.experiment.name

    def dummy_variables(prefix):
        open(prefix + ".index", "w").close()

    state = {"config_hash": resolved.config_hash, "config": resolved.values, "plan": plan.to_dict(),
             "global_step": epoch * 3, "epoch": epoch, "next_batch_index": 0, "cycle_index": epoch * 3,
             "fairness_counts": [[epoch * 3] * 3] * 9, "history": [], "best_metric": 1.0, "best_epoch": 2,
             "early_stop": early_stop or {"best": 1.0, "best_epoch": 2, "bad_epochs": 1, "stopped_epoch": None}}
    for key in drop_model_keys:
        del state["config"]["model"][key]
    checkpoint.save_checkpoint(run_dir / "supernet_last.ckpt", dummy_variables, state, verify_variables=False)
    return state


def test_empty_validation_split_is_fatal_and_names_the_folder(cli, tiny_run, tmp_path):
    empty = tmp_path / "empty_val"
    empty.mkdir()
    tiny_run["data"]["val_dir"] = str(empty)
    result = cli("train", "--config", _write_config(tmp_path, tiny_run))
    assert result.exit_code == 1
    assert "train_samples=16" in result.output and f"val_samples=0 (folders: {empty})" in result.output
    assert "val_samples == 0, training not started: val split is empty" in result.output
    assert str(empty) in result.output
    assert "Traceback" not in result.output


def test_existing_run_is_not_overwritten_without_resume(cli, tiny_run, tmp_path):
    _fake_last_checkpoint(tiny_run)
    result = cli("train", "--config", _write_config(tmp_path, tiny_run))
    assert result.exit_code == 1
    assert "supernet_last.ckpt already exists: pass --resume" in result.output


def test_resume_under_a_different_experiment_definition_is_refused(cli, tiny_run, tmp_path):
    _fake_last_checkpoint(tiny_run)
    result = cli("train", "--config", _write_config(tmp_path, tiny_run), "--resume", "--lr", "0.5")
    assert result.exit_code == 1
    assert "cannot resume" in result.output and "train.lr: checkpoint 0.001 != now 0.5" in result.output
    assert "resume_experiment_name" in result.output


def test_locations_and_runtime_knobs_may_change_on_resume(tiny_run):
    state = _fake_last_checkpoint(tiny_run)
    moved = resolve_mapping(tiny_run, {"data.train_dir": "/elsewhere/train", "train.max_epochs": 2,
                                       "runtime.debug_trace": True, "early_stop.patience": 200})
    assert config_differences(state["config"], moved.values) == []
    check_resumable(state, moved, make_plan(moved.config, 16, 4), "ckpt")


def test_option_init_may_differ_on_resume_or_be_missing_from_an_older_checkpoint(tiny_run):
    """model.option_init decides initial values only; a resume restores every weight."""
    state = _fake_last_checkpoint(tiny_run)
    older = {section: dict(values) for section, values in state["config"].items()}
    older["model"].pop("option_init", None)  # written before the key existed
    for option_init in ("independent", "tied"):
        now = resolve_mapping(tiny_run, {"model.option_init": option_init})
        assert config_differences(older, now.values) == []
        assert config_differences(state["config"], now.values) == []


def test_residual_init_must_match_on_resume_and_was_random_before_it_existed(tiny_run):
    """model.residual_init decides initial values too, but a run started with one value and finished under the
    other would be recorded as something it never computed: a resume refuses the change.  A checkpoint written
    before the key existed was 'random'."""
    state = _fake_last_checkpoint(tiny_run)
    older = {section: dict(values) for section, values in state["config"].items()}
    older["model"].pop("residual_init", None)
    assert config_differences(older, resolve_mapping(tiny_run, {}).values) == []
    identity = resolve_mapping(tiny_run, {"model.residual_init": "identity"}).values
    assert config_differences(older, identity) == ["model.residual_init: checkpoint 'random' != now 'identity'"]
    assert config_differences(state["config"], identity) == [
        "model.residual_init: checkpoint 'random' != now 'identity'"]


def test_lr_warm_up_must_match_on_resume_and_was_0_before_it_existed(cli, tiny_run, tmp_path):
    """train.lr_warmup_steps is part of the schedule, like train.lr: a resume refuses a change.  A checkpoint
    written before the key existed trained without a warm-up (0)."""
    state = _fake_last_checkpoint(tiny_run)
    result = cli("train", "--config", _write_config(tmp_path, tiny_run), "--resume",
                 "--set", "train.lr_warmup_steps=4")
    assert result.exit_code == 1
    assert "cannot resume" in result.output and "train.lr_warmup_steps: checkpoint 0 != now 4" in result.output
    older = {section: dict(values) for section, values in state["config"].items()}
    del older["train"]["lr_warmup_steps"]
    assert config_differences(older, resolve_mapping(tiny_run, {}).values) == []
    assert config_differences(older, resolve_mapping(tiny_run, {"train.lr_warmup_steps": 4}).values) == [
        "train.lr_warmup_steps: checkpoint 0 != now 4"]


def test_missing_inherit_source_is_an_error(cli, tiny_run, tmp_path):
    result = cli("train", "--config", _write_config(tmp_path, tiny_run), "--resume_experiment_name", "nope")
    assert result.exit_code == 1 and "no checkpoint at" in result.output and "nope" in result.output
    # ... and it names both ways on: train the named experiment first, or start without it.
    assert "--experiment_name nope" in result.output
    assert "--set checkpoint.resume_experiment_name=null" in result.output


def test_resume_restores_or_resets_early_stop_state(tiny_run):
    state = _fake_last_checkpoint(tiny_run)
    kept, stopper = initial_state("resume", state, resolve_mapping(tiny_run, {"checkpoint.resume": True}), print)
    assert (kept.epoch, kept.global_step, kept.best_metric, stopper.state.bad_epochs) == (3, 9, 1.0, 1)
    reset = resolve_mapping(tiny_run, {"checkpoint.resume": True, "checkpoint.reset_early_stop_on_resume": True})
    fresh, stopper = initial_state("resume", state, reset, print)
    assert (fresh.epoch, fresh.global_step) == (3, 9)
    assert fresh.best_metric is None and stopper.state.best is None and stopper.state.bad_epochs == 0


def test_gpu_device_without_a_gpu_is_accepted_with_a_notice():
    import tensorflow as tf

    from edgeflownas.config_types import RuntimeConfig
    from edgeflownas.train.runtime import configure_runtime

    if tf.config.list_physical_devices("GPU"):
        pytest.skip("a GPU is visible: the CPU-only notice cannot be observed here")
    lines = []
    runtime = RuntimeConfig(gpu_device=0, deterministic=False, debug_trace=False, fast_mode=True,
                            graph_optimizations=True)
    assert configure_runtime(runtime, lines.append) is None  # build on TensorFlow's default device: the CPU
    assert lines == ["notice: --gpu_device 0 requested but TensorFlow sees no GPU; running on CPU"]


@pytest.mark.parametrize("recorded", [True, False], ids=["recorded", "older-checkpoint-without-the-key"])
def test_inheriting_weights_trained_in_another_upsampling_order_says_so(tiny_run, recorded):
    """A checkpoint trained in resize_conv (recorded, or from before model.upsample existed) inherited in both orders."""
    from edgeflownas.train.start import fresh_or_inherit

    state = _fake_last_checkpoint(dict(tiny_run, model=dict(tiny_run.get("model", {}), upsample="resize_conv")),
                                  drop_model_keys=() if recorded else ("upsample",))
    assert ("upsample" in state["config"]["model"]) == recorded
    inherit = {"experiment.name": "inheritor", "checkpoint.resume_experiment_name": tiny_run["experiment"]["name"]}
    for order, expected in (("resize_conv", 0), ("conv_resize", 1)):
        lines = []
        start = fresh_or_inherit(resolve_mapping(tiny_run, dict(inherit, **{"model.upsample": order})), lines.append)
        assert start.mode == "inherit"
        notices = [line for line in lines if "model.upsample" in line]
        assert len(notices) == expected, lines
    assert "trained with model.upsample=resize_conv, this run uses conv_resize" in notices[0]
    assert "--set model.upsample=resize_conv keeps it" in notices[0]

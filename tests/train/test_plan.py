"""The run plan: steps per epoch, schedule length, evaluation sizes, fast mode."""

from __future__ import annotations

import pytest

from edgeflownas.config import resolve_mapping
from edgeflownas.errors import ConfigError, DataError
from edgeflownas.train.plan import make_plan


def _cfg(**sections):
    raw = {"experiment": {"name": "p"}, "data": {"train_dir": "t", "val_dir": "v"}}
    for name, values in sections.items():
        raw.setdefault(name, {}).update(values)
    return resolve_mapping(raw).config


def test_default_is_one_pass_and_the_schedule_spans_all_epochs():
    plan = make_plan(_cfg(), train_samples=22232, val_samples=640)
    assert plan.steps_per_epoch == 22232 // 32 == 694
    assert plan.planned_steps == 200 * 694 and plan.paths_per_step == 3
    assert plan.eval_batch_size == 32 and plan.val_batches == 20 and plan.val_samples_used == 640
    assert plan.recal_batches == 8 and plan.pool_size == 12 and plan.notices == ()


def test_fast_mode_uses_its_section():
    plan = make_plan(_cfg(runtime={"fast_mode": True}), 1000, 100)
    assert (plan.steps_per_epoch, plan.val_batches, plan.eval_batch_size) == (4, 2, 4)
    assert plan.planned_steps == 200 * 4


def test_max_steps_caps_steps_per_epoch_and_the_schedule():
    plan = make_plan(_cfg(train={"max_steps": 30, "max_epochs": 1}), 22232, 640)
    assert plan.steps_per_epoch == 30 and plan.planned_steps == 200 * 30


def test_steps_beyond_one_pass_are_capped_with_a_notice():
    plan = make_plan(_cfg(train={"steps_per_epoch": 50, "batch_size": 4}), 40, 8)
    assert plan.steps_per_epoch == 10
    assert "exceeds one pass" in plan.notices[0]


def test_fixed_arch_runs_one_path_per_step():
    assert make_plan(_cfg(train={"supernet_mode": "fixed_arch"}), 100, 10).paths_per_step == 1


def test_partial_last_validation_batch_is_kept():
    plan = make_plan(_cfg(eval={"batch_size": 8}), 100, 20)
    assert plan.val_batches == 3 and plan.val_samples_used == 20


def test_too_few_training_samples_for_one_batch():
    with pytest.raises(DataError, match="fewer than one batch"):
        make_plan(_cfg(), 10, 10)


def test_a_warm_up_longer_than_the_planned_steps_is_refused_naming_the_key_and_the_count():
    train = {"steps_per_epoch": 5, "num_epochs": 2, "batch_size": 4}
    assert make_plan(_cfg(train={**train, "lr_warmup_steps": 10}), 100, 10).notices == ()  # ends at the last step
    with pytest.raises(ConfigError) as info:
        make_plan(_cfg(train={**train, "lr_warmup_steps": 11}), 100, 10)
    assert str(info.value) == ("train.lr_warmup_steps=11 exceeds the 10 planned optimizer steps (num_epochs 2 x "
                               "steps_per_epoch 5): the warm-up would never end; set train.lr_warmup_steps to at most "
                               "10, or plan more steps")


def test_fast_mode_runs_a_longer_warm_up_unfinished_with_a_notice():
    """Fast mode cuts a real config's steps (4 per epoch here): its warm-up is not an error there."""
    plan = make_plan(_cfg(train={"num_epochs": 2, "lr_warmup_steps": 1000}, runtime={"fast_mode": True}), 1000, 100)
    assert plan.planned_steps == 8
    assert plan.notices == ("train.lr_warmup_steps=1000 exceeds the 8 planned optimizer steps (num_epochs 2 x "
                            "steps_per_epoch 4) in fast mode; the warm-up does not finish in this run",)

"""Sweep grids: parsing, trial names, validation of every trial before anything is submitted."""

from __future__ import annotations

import pytest

from edgeflownas.errors import ConfigError
from launcher.plan import build_plan
from launcher.sweep import expand_grid, parse_scalar, parse_sweep_specs


@pytest.mark.parametrize("text, value", [("1", 1), ("1e-4", 1e-4), ("3.0e-4", 3e-4), ("true", True),
                                         ("null", None), ("abc", "abc"), ("-2", -2)])
def test_values_from_the_command_line_get_their_yaml_type(text, value):
    assert parse_scalar(text) == value


def test_grid_expands_in_order_with_stable_path_safe_names():
    grid = parse_sweep_specs(["seed=1,2", "lr=1e-4,3e-4"])
    assert grid == {"experiment.seed": [1, 2], "train.lr": [1e-4, 3e-4]}
    trials = expand_grid(grid)
    assert [t.name for t in trials] == ["seed=1_lr=0.0001", "seed=1_lr=0.0003", "seed=2_lr=0.0001",
                                        "seed=2_lr=0.0003"]
    assert trials[1].as_dict() == {"experiment.seed": 1, "train.lr": 3e-4}


def test_sweep_file_is_a_yaml_mapping_of_lists(tmp_path):
    path = tmp_path / "sweep.yaml"
    path.write_text("experiment.seed: [1, 2]\ntrain.lr: 1.0e-4\n")
    assert parse_sweep_specs([str(path)]) == {"experiment.seed": [1, 2], "train.lr": [1e-4]}


@pytest.mark.parametrize("spec, message", [
    ("slurm.time_min=5,10", "cannot be swept"),
    ("experiment.name=a,b", "cannot be swept"),
    ("colour=red", "neither a dotted config key"),
    ("seed=", "has no values"),
])
def test_unsweepable_or_unknown_keys_are_refused(spec, message):
    with pytest.raises(ConfigError, match=message):
        parse_sweep_specs([spec])


def test_values_that_collide_on_one_directory_are_refused():
    with pytest.raises(ConfigError, match="same trial directory"):
        expand_grid(parse_sweep_specs(["data.train_dir=a/b,a_b"]))


def test_every_invalid_trial_is_reported_and_no_plan_is_built(launch_config, tmp_path):
    with pytest.raises(ConfigError) as info:
        build_plan(launch_config(), {}, ["seed=1,-1", "lr=1e-4,0"], None)
    message = str(info.value)
    assert "3 sweep trial(s) invalid, nothing submitted" in message
    assert "experiment.seed: -1 is less than the minimum of 0" in message
    assert "train.lr: 0 is less than or equal to the minimum of 0" in message
    assert not (tmp_path / "out").exists()


def test_trials_get_their_own_run_directories_under_the_experiment(launch_config, tmp_path):
    plan = build_plan(launch_config(), {}, ["seed=1,2"], None)
    assert [t.run_dir for t in plan.trials] == [tmp_path / "out" / "golden" / "seed=1",
                                                tmp_path / "out" / "golden" / "seed=2"]
    assert [t.resolved.config.experiment.seed for t in plan.trials] == [1, 2]
    assert plan.log_dir == tmp_path / "out" / "golden" / "slurm"

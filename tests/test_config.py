"""Config loading: schema validation with every error reported, precedence, dataclasses."""

from __future__ import annotations

import dataclasses

import pytest

from edgeflownas.config import Overrides, load_schema, resolve, resolve_mapping
from edgeflownas.config_types import SECTION_TYPES, Config
from edgeflownas.errors import ConfigError


def test_shipped_config_is_valid_and_carries_the_locked_defaults():
    cfg = resolve(None).config
    assert (cfg.data.input_height, cfg.data.input_width) == (180, 240)
    assert cfg.train.supernet_mode == "strict_fairness"
    assert cfg.train.weight_decay == pytest.approx(4e-5)
    assert cfg.train.grad_clip_norm == 5.0
    assert cfg.train.num_epochs == 200
    assert cfg.eval.bn_recal_batches == 8 and cfg.eval.pool_size == 12 and cfg.eval.every_n_epochs == 1
    assert cfg.early_stop.patience == 15 and cfg.early_stop.min_delta == pytest.approx(0.002)
    assert cfg.checkpoint.reset_early_stop_on_resume is False
    assert cfg.checkpoint.resume_experiment_name is None
    assert cfg.data.source == "folders"


def test_config_is_frozen():
    cfg = resolve(None).config
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.train.lr = 1.0


def test_cli_override_wins_over_file_and_file_over_default(default_raw):
    del default_raw["train"]["lr_min"]
    resolved = resolve_mapping(default_raw, {"train.lr": 1e-3})
    assert resolved.config.train.lr == 1e-3
    assert resolved.sources["train.lr"] == "cli"
    assert resolved.sources["train.batch_size"] == "file"
    assert resolved.sources["train.lr_min"] == "default"
    assert resolved.config.train.lr_min == 0.0


def test_minimal_config_gets_schema_defaults():
    resolved = resolve_mapping({"experiment": {"name": "x"}, "data": {"train_dir": "a", "val_dir": "b"}})
    assert resolved.config.eval.bn_recal_batches == 8
    assert resolved.config.model.fixed_arch_code == (0, 0, 0, 0, 2, 1, 2, 2, 2)


def test_every_error_is_reported_at_once_with_its_path(default_raw):
    default_raw["train"]["lr"] = -1
    default_raw["train"]["batch_size"] = "big"
    default_raw["eval"]["colour"] = "red"
    del default_raw["data"]["val_dir"]
    with pytest.raises(ConfigError) as info:
        resolve_mapping(default_raw)
    message = str(info.value)
    assert "4 errors" in message
    assert "train.lr: -1 is less than or equal to the minimum of 0" in message
    assert "train.batch_size: 'big' is not of type 'integer'" in message
    assert "eval.colour: unknown key" in message
    assert "data.val_dir: required key is missing" in message


def test_shards_source_requires_shards_dir(default_raw):
    default_raw["data"]["source"] = "shards"
    with pytest.raises(ConfigError, match="data.shards_dir: required when data.source is 'shards'"):
        resolve_mapping(default_raw)


def test_config_hash_changes_with_any_value(default_raw):
    a = resolve_mapping(default_raw).config_hash
    b = resolve_mapping(default_raw, {"experiment.seed": 7}).config_hash
    assert a != b and len(a) == 64


def test_schema_and_dataclasses_stay_in_step():
    schema = load_schema()
    assert set(schema["properties"]) == set(SECTION_TYPES) == {f.name for f in dataclasses.fields(Config)}
    for name, cls in SECTION_TYPES.items():
        assert set(schema["properties"][name]["properties"]) == {f.name for f in dataclasses.fields(cls)}, name


def _walk(node, path):
    yield path, node
    for key, sub in node.get("properties", {}).items():
        yield from _walk(sub, f"{path}.{key}")


def test_schema_is_strict_and_documented():
    schema = load_schema()
    assert schema["$schema"].endswith("draft/2020-12/schema")
    for path, node in _walk(schema, "$"):
        assert node.get("description"), f"{path} has no description"
        if node.get("type") == "object" and "propertyNames" not in node:  # propertyNames: a free map by design
            assert node.get("additionalProperties") is False, f"{path} allows unknown keys"


def test_non_finite_numbers_are_refused_anywhere(default_raw):
    default_raw["early_stop"]["min_delta"] = float("nan")
    default_raw["loss"] = {"scale_weights": [0.125, float("inf"), 0.5]}
    with pytest.raises(ConfigError) as info:
        resolve_mapping(default_raw)
    message = str(info.value)
    assert "early_stop.min_delta: nan is not a finite number" in message
    assert "loss.scale_weights.1: inf is not a finite number" in message


def test_override_errors_name_the_option_that_set_them(default_raw):
    overrides = Overrides({"train.lr": float("nan"), "experiment.seed": 1},
                          {"train.lr": "--lr", "experiment.seed": "--seed"})
    with pytest.raises(ConfigError, match=r"^option --lr is invalid: train.lr: nan is not a finite number"):
        resolve_mapping(default_raw, overrides)
    with pytest.raises(ConfigError, match=r"^config is invalid: train.lr: nan is not a finite number"):
        resolve_mapping(default_raw, {"train.lr": float("nan")})


def test_every_named_override_is_a_schema_key_of_its_type_and_choices():
    from edgeflownas.config import OVERRIDES

    schema_types = {str: "string", int: "integer", float: "number", bool: "boolean"}
    schema = load_schema()
    for item in OVERRIDES:
        section, key = item.key.split(".")
        leaf = schema["properties"][section]["properties"][key]
        if "enum" in leaf:
            assert set(item.choices) == set(leaf["enum"]) and item.type is str, (item.option, leaf)
            continue
        allowed = leaf["type"] if isinstance(leaf["type"], list) else [leaf["type"]]
        assert schema_types[item.type] in allowed and not item.choices, (item.option, leaf)


def test_override_table_lives_in_the_config_layer_without_click():
    import subprocess
    import sys

    code = "import sys, launcher.sweep, edgeflownas.config as c; print(len(c.OVERRIDES), 'click' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    count, click_imported = done.stdout.split()
    assert int(count) > 0 and click_imported == "False"

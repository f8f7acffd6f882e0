"""Everyday use: one number rule, --set, did-you-mean, the run's config.yaml, one naming rule."""

from __future__ import annotations

import importlib

import click
import pytest
import yaml

from edgeflownas.cli import COMMANDS
from edgeflownas.cli.options import collect_overrides
from edgeflownas.config import config_hash, resolve, resolve_mapping
from edgeflownas.config_yaml import parse_value, read_yaml
from edgeflownas.errors import ConfigError
from launcher.sweep import parse_sweep_specs


def _minimal(tmp_path, **sections) -> dict:
    raw = {"experiment": {"name": "everyday", "output_root": str(tmp_path / "out")},
           "data": {"train_dir": str(tmp_path / "train"), "val_dir": str(tmp_path / "val")}}
    for section, values in sections.items():
        raw.setdefault(section, {}).update(values)
    return raw


# --- one number rule -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("text, value", [("1e-4", 1e-4), ("1E5", 1e5), (".5e-3", 5e-4), ("-2e3", -2e3),
                                         ("3.0e-4", 3e-4), ("7", 7), ("1e", "1e"), ("e5", "e5")])
def test_yaml_reads_exponent_floats_as_numbers_everywhere(write_config, tmp_path, text, value):
    path = write_config(f"a: {text}\n", name="number.yaml")
    assert read_yaml(path) == {"a": value}
    assert parse_value(text, "--set a") == value
    assert yaml.safe_load(f"a: {text}") == yaml.safe_load(f"a: {text}")  # PyYAML's own loader is left alone


def test_lr_1e_4_in_a_config_file_is_a_number(write_config, tmp_path):
    text = yaml.safe_dump(_minimal(tmp_path)) + "train:\n  lr: 1e-4\n  lr_min: 1E-6\n"
    resolved = resolve(write_config(text))
    assert resolved.config.train.lr == 1e-4 and resolved.config.train.lr_min == 1e-6


def test_sweep_file_command_line_and_config_agree_on_numbers(write_config):
    sweep = write_config("lr: [1e-4, 3e-4]\nseed: 1\ndata.train_dir: ['1e5']\n", name="sweep.yaml")
    assert parse_sweep_specs([str(sweep)])["train.lr"] == [1e-4, 3e-4]
    assert parse_sweep_specs(["lr=1e-4,3E-4"]) == {"train.lr": [1e-4, 3e-4]}
    assert parse_sweep_specs([str(sweep)])["data.train_dir"] == ["1e5"]  # quoted stays a string


# --- did-you-mean ------------------------------------------------------------------------------------------------

def test_unknown_keys_get_a_did_you_mean_one_per_line(write_config, tmp_path):
    raw = _minimal(tmp_path, train={"batchsize": 4, "zzz": 1, "qqq": 2})
    raw["lr"] = 1e-4
    with pytest.raises(ConfigError) as error:
        resolve(write_config(raw))
    lines = str(error.value).splitlines()[1:]
    assert "  train.batchsize: unknown key; did you mean 'batch_size'?" in lines
    assert "  lr: unknown key; did you mean 'train.lr'?" in lines
    assert sum("weight_decay" in line for line in lines) == 1, "the valid keys of a section are listed once"
    assert "  train.zzz: unknown key; valid keys listed above" in lines


# --- --set ------------------------------------------------------------------------------------------------------

def test_set_overrides_any_key_with_cli_set_provenance(cli):
    result = cli("train", "--dry_run", "--set", "train.lr=1e-4", "--set", "loss.scale_weights=[0.1,0.2,0.3]",
                 "--set", "slurm.partition=gpu", "--seed", "5")
    assert result.exit_code == 0, result.output
    rows = {line.split()[0]: line.split()[1:] for line in result.output.splitlines() if not line.startswith("#")}
    assert rows["train.lr"] == ["0.0001", "[cli", "--set]"]
    assert rows["slurm.partition"] == ['"gpu"', "[cli", "--set]"]
    assert rows["experiment.seed"] == ["5", "[cli]"]
    assert "0.1, 0.2, 0.3" in result.output


def test_set_and_a_named_option_naming_the_same_key_is_refused(cli):
    result = cli("train", "--dry_run", "--lr", "1e-3", "--set", "train.lr=2e-4")
    assert result.exit_code == 2
    assert "train.lr is also set by --lr" in result.output
    twice = cli("train", "--dry_run", "--set", "lr=1", "--set", "train.lr=2")
    assert twice.exit_code == 2 and "train.lr is also set by --set lr=1" in twice.output


@pytest.mark.parametrize("args, message", [
    (["--set", "train.batchsize=4"], "option --set train.batchsize=4 is invalid: train.batchsize: unknown key; "
                                     "did you mean 'batch_size'?"),
    (["--set", "batchsize=4"], "did you mean 'batch_size' (train.batch_size)?"),
    (["--set", "train.lr=abc"], "option --set train.lr=abc is invalid: train.lr: 'abc' is not of type 'number'"),
    (["--set", "train.lr"], "--set train.lr: expected KEY=VALUE"),
    (["--lr", "-1"], "option --lr is invalid: train.lr"),
])
def test_bad_command_line_values_are_blamed_on_their_option(cli, args, message):
    result = cli("train", "--dry_run", *args)
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "config file" not in result.output


# --- slurm.timeout_min ------------------------------------------------------------------------------------------

def test_timeout_min_is_the_submitit_spelling_of_time_min(tmp_path):
    resolved = resolve_mapping(_minimal(tmp_path, slurm={"timeout_min": 30}))
    assert resolved.config.slurm.time_min == 30 and "timeout_min" not in resolved.values["slurm"]
    with pytest.raises(ConfigError, match="slurm.timeout_min and slurm.time_min are both given"):
        resolve_mapping(_minimal(tmp_path, slurm={"timeout_min": 30, "time_min": 40}))
    with pytest.raises(ConfigError, match="option --set slurm.timeout_min=0 is invalid: slurm.time_min"):
        resolve(None, _set("slurm.timeout_min=0"))


def _set(*specs):
    return collect_overrides({"set_values": specs})


# --- the run's config.yaml --------------------------------------------------------------------------------------

def test_run_config_yaml_resolves_back_to_the_same_config_hash(cli, write_config, tmp_path):
    from edgeflownas.train.run_dir import write_resolved_config

    raw = _minimal(tmp_path, train={"lr": 3e-4}, slurm={"timeout_min": 30})
    overrides = collect_overrides({"experiment_name": "1e5",  # a string that looks like a number stays a string
                                   "set_values": ("train.lr_min=1e-7",
                                                  "slurm.additional_parameters={constraint: a100, exclusive: true}")})
    resolved = resolve(write_config(raw), overrides)
    path = write_resolved_config(tmp_path, resolved)
    again = resolve(path)
    assert again.values == resolved.values and again.config_hash == resolved.config_hash
    assert cli("config", "validate", path).exit_code == 0
    dry = cli("train", "--dry_run", "--config", path)
    assert dry.exit_code == 0 and f"# config_hash {resolved.config_hash}" in dry.output
    assert config_hash(yaml.safe_load(path.read_text())) == resolved.config_hash  # plain YAML readers agree too


# --- one naming rule, over every command of the registry --------------------------------------------------------

def _commands():
    """(command path, click command) of every leaf command in the registry (groups walked)."""
    found = []
    for name, (target, _) in sorted(COMMANDS.items()):
        module, attr = target.split(":")
        stack = [([name], getattr(importlib.import_module(module), attr))]
        while stack:
            path, command = stack.pop()
            if isinstance(command, click.Group):
                stack += [(path + [sub], child) for sub, child in command.commands.items()]
            else:
                found.append((path, command))
    return found


def _spellings(command):
    """(option, shown spellings, hidden aliases) of every option of a command."""
    rows = []
    for param in command.params:
        if isinstance(param, click.Option):
            rows.append((param, [o for o in param.opts + param.secondary_opts if o not in getattr(param, "aliases", ())],
                         list(getattr(param, "aliases", ()))))
    return rows


COMMAND_PATHS = [" ".join(path) for path, _ in _commands()]


@pytest.mark.parametrize("path", COMMAND_PATHS)
def test_every_option_accepts_snake_case_and_dashed_spellings(cli, path):
    command = dict((" ".join(p), c) for p, c in _commands())[path]
    ctx = click.Context(command, info_name=path)
    for param, shown, aliases in _spellings(command):
        long_names = [o for o in shown if o.startswith("--")]
        for name in long_names:
            stem = name[2:]
            snake, dashed = f"--{stem.replace('-', '_')}", f"--{stem.replace('_', '-')}"
            assert {snake, dashed} <= set(long_names), f"efnas {path}: {name} lacks {snake} or {dashed}"
            for spelling in (snake, dashed, *aliases):
                args = [spelling] if param.is_flag or param.count else [spelling, "1"]
                result = cli(*path.split(), *args, "--help")
                assert result.exit_code == 0, f"efnas {path} {' '.join(args)}: {result.output}"
        record = param.get_help_record(ctx)
        tokens = [t for t in (record[0] if record else "").replace(",", " ").replace("/", " ").split() if t[:2] == "--"]
        for token in tokens:
            snake = "--" + token[2:].replace("-", "_")
            assert tokens.index(snake) <= tokens.index(token), f"efnas {path}: --help shows {record[0]!r}; snake first"
        assert not set(aliases) & set(tokens), f"efnas {path}: --help shows a hidden alias in {record[0]!r}"


def test_same_idea_same_name_old_names_stay_hidden_aliases(cli):
    synth_help = cli("synth", "--help").output
    assert "--train_samples" in synth_help and "--train " not in synth_help and "--val " not in synth_help
    check_help = cli("data-check", "--help").output
    assert "--shards_dir" in check_help and "--shards " not in check_help
    assert "--out" in check_help and "--report" not in check_help
    report_help = cli("report", "--help").output
    assert "--run" in report_help and "--no_cost" in report_help
    assert "--no_report" in cli("demo", "--help").output


@pytest.mark.parametrize("command", ["arch", "eval", "report"])
def test_cost_is_called_macs(cli, command):
    text = cli(command, "--help").output + cli(command, "describe", "--help").output if command == "arch" else \
        cli(command, "--help").output
    assert "FLOPs" not in text.replace("FLOPs = 2 x MACs", ""), text


# --- a real tiny run: its config.yaml and its status ------------------------------------------------------------

TINY = {  # tests/train/conftest.py's TINY_RUN: 32x48, 8-channel stem, batch 2, 3 steps, one small val batch
    "experiment": {"name": "tiny", "seed": 5},
    "data": {"input_height": 32, "input_width": 48, "num_workers": 1, "prefetch_batches": 2},
    "model": {"init_neurons": 8},
    "train": {"num_epochs": 2, "batch_size": 2, "steps_per_epoch": 3, "log_every_steps": 1000},
    "eval": {"bn_recal_batches": 2, "batch_size": 2, "val_batches": 1},
    "early_stop": {"min_epochs_before_early_stop": 0},
    "runtime": {"deterministic": True, "graph_optimizations": False},
}


@pytest.mark.slow
def test_a_trained_runs_config_yaml_and_status(cli, tiny_fc2, tmp_path):
    import json

    raw = dict(TINY, data=dict(TINY["data"], train_dir=str(tiny_fc2 / "train"), val_dir=str(tiny_fc2 / "val")))
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(raw))
    trained = cli("train", "--config", config, "--output_root", tmp_path / "runs", "--max_epochs", 1,
                  "--set", "train.lr=3e-4")
    assert trained.exit_code == 0, trained.output[-3000:]
    run = tmp_path / "runs" / "tiny"
    manifest = json.loads((run / "train_manifest.json").read_text())
    assert cli("config", "validate", run / "config.yaml").exit_code == 0
    dry = cli("train", "--dry_run", "--config", run / "config.yaml")
    assert f"# config_hash {manifest['config_hash']}" in dry.output
    assert resolve(run / "config.yaml").config.train.lr == 3e-4

    status = json.loads(cli("status", run, "--json").output)["runs"][0]
    assert (status["state"], status["epoch"], status["last_step"], status["finished"]) == ("IDLE", 1, 3, False)
    assert status["lock_holder"] is None and status["logs"]["train.log"] == str(run / "train.log")
    assert (run / "train.log").is_file()

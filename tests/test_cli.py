"""CLI wiring: help texts, exit codes, one-line errors, lazy TensorFlow import."""

from __future__ import annotations

import subprocess
import sys

import pytest

TRAIN_OPTIONS = ["--config", "--gpu_device", "--num_epochs", "--batch_size", "--lr", "--supernet_mode",
                 "--fast_mode", "--dry_run", "--max_epochs", "--max_steps", "--debug_trace", "--resume",
                 "--experiment_name"]


def test_top_level_help_lists_the_commands(cli):
    result = cli("--help")
    assert result.exit_code == 0
    for name in ("data-check", "pack", "train", "submit"):
        assert name in result.output


def test_train_help_lists_the_spec_options(cli):
    result = cli("train", "--help")
    assert result.exit_code == 0
    for option in TRAIN_OPTIONS:
        assert option in result.output, option


def test_dry_run_prints_resolved_config_and_cli_wins(cli):
    result = cli("train", "--config", "configs/supernet_fc2_180x240.yaml", "--dry_run", "--lr", "1e-3")
    assert result.exit_code == 0, result.output
    line = next(l for l in result.output.splitlines() if l.startswith("train.lr "))
    assert "0.001" in line and "[cli]" in line
    assert "config_hash" in result.output


@pytest.mark.parametrize(
    "content, expected",
    [
        ({"bogus_section": 1}, "bogus_section: unknown key"),
        ("experiment: {name: x\n  data: [", "is not valid YAML at line"),
        ("- just\n- a list\n", "must be a mapping of sections"),
    ],
    ids=["unknown_key", "malformed_yaml", "not_a_mapping"],
)
def test_bad_config_files_exit_2_naming_the_problem(cli, write_config, default_raw, content, expected):
    if isinstance(content, dict):
        default_raw.update(content)
        content = default_raw
    path = write_config(content)
    result = cli("train", "--config", path, "--dry_run")
    assert result.exit_code == 2
    assert expected in result.output
    assert str(path) in result.output
    assert "Traceback" not in result.output


def test_wrong_type_out_of_range_and_missing_field_exit_2(cli, write_config, default_raw):
    default_raw["train"]["num_epochs"] = "many"
    default_raw["eval"]["bn_recal_batches"] = 0
    del default_raw["experiment"]["name"]
    result = cli("train", "--config", write_config(default_raw), "--dry_run")
    assert result.exit_code == 2
    assert "3 errors" in result.output
    assert "train.num_epochs: 'many' is not of type 'integer'" in result.output
    assert "eval.bn_recal_batches: 0 is less than the minimum of 1" in result.output
    assert "experiment.name: required key is missing" in result.output


def test_missing_config_file_exits_2(cli, tmp_path):
    result = cli("train", "--config", tmp_path / "nope.yaml", "--dry_run")
    assert result.exit_code == 2
    assert "nope.yaml does not exist" in result.output


def test_cli_override_is_validated_too(cli):
    result = cli("train", "--dry_run", "--lr", "-1")
    assert result.exit_code == 2
    assert "train.lr: -1.0 is less than or equal to the minimum of 0" in result.output


def test_bad_experiment_name_is_rejected(cli):
    result = cli("train", "--dry_run", "--experiment_name", "../evil;rm")
    assert result.exit_code == 2
    assert "experiment.name" in result.output


def test_config_validate_command(cli, write_config, default_raw):
    assert cli("config", "validate", "configs/supernet_fc2_180x240.yaml").exit_code == 0
    default_raw["train"]["lr"] = 0
    result = cli("config", "validate", write_config(default_raw))
    assert result.exit_code == 2 and "train.lr" in result.output


def _tf_after(argv_list):
    """Run each argv through ``efnas`` in one fresh interpreter; its stdout: exit codes, then whether TF got imported."""
    code = (
        "import sys\n"
        "from edgeflownas.cli import main\n"
        f"for args in {argv_list!r}:\n"
        "    try:\n        main(args)\n    except SystemExit as e:\n        print('EXIT', args, e.code)\n"
        "print('TF', any(m == 'tensorflow' or m.startswith('tensorflow.') for m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    return out.stdout + out.stderr


def _help_and_dry_runs(name, dry_runs):
    """``<name> --help``, ``<name> <sub> --help`` for each subcommand, and the dry runs of those with --dry_run."""
    import click

    from edgeflownas.cli import main

    command = main.get_command(None, name)
    runs, dry = [[name, "--help"]], []
    subcommands = command.commands if isinstance(command, click.Group) else {}
    for path, cmd in [((name,), command)] + [((name, sub), c) for sub, c in sorted(subcommands.items())]:
        if path != (name,):
            runs.append([*path, "--help"])
        if any(param.name == "dry_run" for param in cmd.params):
            key = " ".join(path)
            assert key in dry_runs, f"'efnas {key}' has --dry_run: add its arguments to DRY_RUNS in {__file__}"
            dry.append([*path, *dry_runs[key]])
    return runs + dry


def _fake_supernet_run(tmp_path, config):
    """A run directory whose supernet_best holds a recorded config (dummy variables): enough for a dry run."""
    from edgeflownas.config import resolve
    from edgeflownas.train import checkpoint

    run = tmp_path / "supernet"
    state = {"config": resolve(config).values, "config_hash": "0" * 64, "global_step": 0, "epoch": 1,
             "next_batch_index": 0, "cycle_index": 0}
    checkpoint.save_checkpoint(run / "supernet_best.ckpt", lambda prefix: open(prefix + ".index", "wb").close(),
                               state, verify_variables=False)
    return run


def _registry():
    from edgeflownas.cli import COMMANDS

    return sorted(COMMANDS)


@pytest.mark.parametrize("name", _registry())
def test_help_and_dry_run_of_every_registered_command_never_import_tensorflow(name, tmp_path):
    data = tmp_path / "data"
    for split in ("train", "val"):
        (data / split).mkdir(parents=True)
    config = tmp_path / "launch.yaml"
    config.write_text(
        f"experiment: {{name: dry, output_root: {str(tmp_path / 'out')!r}}}\n"
        f"data: {{train_dir: {str(data / 'train')!r}, val_dir: {str(data / 'val')!r}}}\n"
        "slurm: {partition: gpu, account: proj42}\n", encoding="utf-8")
    dry_runs = {"train": ["--dry_run"], "submit": ["--config", str(config), "--dry_run"],
                "retrain": ["--run", str(_fake_supernet_run(tmp_path, config)), "--arch", "baseline",
                            "--experiment_name", "r", "--dry_run"]}
    study = tmp_path / "study.yaml"
    study.write_text(f"study: {{name: s, output_root: {str(tmp_path / 'studies')!r}}}\n"
                     f"supernet: {{config: {str(config)!r}}}\nslurm: {{}}\n", encoding="utf-8")
    dry_runs["study"] = ["--config", str(study), "--dry_run"]
    argv_list = _help_and_dry_runs(name, dry_runs)
    out = _tf_after(argv_list)
    assert out.count("EXIT") == len(argv_list) and all(line.endswith(" 0") for line in out.splitlines()
                                                       if line.startswith("EXIT")), out
    assert "TF False" in out, out


def test_top_level_help_never_imports_tensorflow():
    out = _tf_after([["--help"]])
    assert "EXIT ['--help'] 0" in out and "TF False" in out, out


@pytest.mark.parametrize("command, target, argv", [
    ("search", "edgeflownas.search.run.run_search", ["search", "--run", "R"]),
    ("eval", "edgeflownas.report.eval_run.evaluate_run", ["eval", "--run", "R", "--arch", "baseline"]),
    ("train", "edgeflownas.train.api.run_training", ["train"]),
])
def test_ctrl_c_is_one_line_and_exit_130_for_every_command(cli, monkeypatch, command, target, argv):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    module, name = target.rsplit(".", 1)
    monkeypatch.setattr(f"{module}.{name}", interrupted)
    result = cli(*argv)
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 130, result.output
    assert lines == [lines[-1]] and lines[0].startswith(f"efnas {command}: interrupted by SIGINT (Ctrl-C): ")
    assert "Aborted" not in result.output


def test_sigterm_of_a_study_is_one_line_and_exit_143(cli, monkeypatch, tmp_path):
    """efnas study turns SIGTERM into an interrupt while it runs: the line names the signal, exit 128 + 15."""
    import signal

    def run_study(*args):
        handler = signal.getsignal(signal.SIGTERM)  # what a SIGTERM now would run: it must raise Interrupted
        assert callable(handler), handler
        handler(signal.SIGTERM, None)

    monkeypatch.setattr("launcher.study.load_study", lambda *args: object())
    monkeypatch.setattr("launcher.study.run_study", run_study)
    before = signal.getsignal(signal.SIGTERM)
    result = cli("study", "--config", tmp_path / "study.yaml")
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 128 + signal.SIGTERM, result.output
    assert lines == [lines[-1]] and lines[0].startswith("efnas study: interrupted by SIGTERM: finished trainings")
    assert signal.getsignal(signal.SIGTERM) is before  # the handler is the command's only while it runs

"""Bad config files, options and environments: one line naming the file or option, non-zero exit, no traceback."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from edgeflownas.config import load_yaml
from edgeflownas.errors import ConfigError, DataError

REPO = Path(__file__).resolve().parent.parent
MINIMAL = "experiment: {name: x}\ndata: {train_dir: a, val_dir: b}\n"


@pytest.fixture(scope="module")
def fc2_root(tmp_path_factory) -> Path:
    """A tiny synthetic FC2 root (2 train, 1 val at 32x48), written once for the module."""
    from edgeflownas.data.synth import write_dataset

    root = tmp_path_factory.mktemp("bad_input") / "fc2"
    write_dataset(root, train=2, val=1, seed=0, height=32, width=48)
    return root


def _one_line_error(result, code: int = 2) -> str:
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    return lines[0]


def test_binary_config_file_is_refused_naming_the_file(cli, tmp_path):
    path = tmp_path / "weights.yaml"
    path.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)))
    line = _one_line_error(cli("config", "validate", path))
    assert str(path) in line and "not UTF-8 text" in line and "pass a YAML file" in line


def _alias_bomb(levels: int = 9) -> str:
    """A 9**9-value list in a dozen lines: as the value of train.lr, a valid key."""
    rows = ["[" + ", ".join(["x"] * 9) + "]"]
    rows += ["[" + ", ".join([f"*a{level - 1}"] * 9) + "]" for level in range(1, levels)]
    anchored = ", ".join(f"&a{level} {row}" for level, row in enumerate(rows))
    return MINIMAL + f"train:\n  lr: [{anchored}]\n"


def test_yaml_alias_bomb_as_a_value_is_refused_before_it_expands(tmp_path):
    path = tmp_path / "bomb.yaml"
    path.write_text(_alias_bomb())
    with pytest.raises(ConfigError) as info:
        load_yaml(path)
    message = str(info.value)
    assert str(path) in message and "train.lr" in message and "YAML aliases" in message
    harmless = tmp_path / "shared.yaml"
    harmless.write_text(MINIMAL + "model: {fixed_arch_code: &code [0, 0, 0, 0, 2, 1, 2, 2, 2]}\n"
                        "defaults: &d {lr: 0.1, batch_size: 2}\ntrain:\n  <<: *d\n  lr: 0.2\n")
    assert load_yaml(harmless)["train"] == {"lr": 0.2, "batch_size": 2}


def test_config_file_above_the_size_cap_is_refused(tmp_path):
    path = tmp_path / "huge.yaml"
    path.write_text(MINIMAL + "# padding\n" * 200_000)
    with pytest.raises(ConfigError, match="more than the 1048576 a config file may hold"):
        load_yaml(path)


@pytest.mark.parametrize("text, key, lines", [
    (MINIMAL + "experiment: {name: y}\n", "experiment", "lines 1 and 3"),
    (MINIMAL + "train:\n  lr: 0.1\n  batch_size: 2\n  lr: 0.2\n", "train.lr", "lines 4 and 6"),
], ids=["top_level", "nested"])
def test_duplicate_keys_are_refused_naming_key_and_lines(cli, tmp_path, text, key, lines):
    path = tmp_path / "dup.yaml"
    path.write_text(text)
    line = _one_line_error(cli("train", "--config", path, "--dry_run"))
    assert str(path) in line and f"key '{key}' is given twice ({lines})" in line


@pytest.mark.parametrize("value", ["nan", "inf", "1e400"])
def test_non_finite_cli_number_is_refused_naming_the_option(cli, value):
    line = _one_line_error(cli("train", "--dry_run", "--lr", value))
    assert line.startswith("Error: option --lr is invalid: train.lr:") and "is not a finite number" in line
    assert "config file" not in line


@pytest.mark.parametrize("text, key", [
    ("train: {lr: .nan}\n", "train.lr"),
    ("train: {grad_clip_norm: .inf}\n", "train.grad_clip_norm"),
    ("loss: {scale_weights: [0.125, .inf, 0.5]}\n", "loss.scale_weights.1"),
    ("slurm: {mem_gb: .inf}\n", "slurm.mem_gb"),
], ids=["nan", "inf", "in_a_list", "slurm"])
def test_non_finite_yaml_number_is_refused_naming_file_and_key(cli, tmp_path, text, key):
    path = tmp_path / "nonfinite.yaml"
    path.write_text(MINIMAL + text)
    line = _one_line_error(cli("config", "validate", path))
    assert f"config file {path} is invalid: {key}:" in line and "is not a finite number" in line


def test_bad_cli_value_names_the_option_not_the_config_file(cli, tmp_path):
    line = _one_line_error(cli("train", "--dry_run", "--batch_size", "0"))
    assert line.startswith("Error: option --batch_size is invalid: train.batch_size: 0 is less than the minimum of 1")
    path = tmp_path / "bad.yaml"
    path.write_text(MINIMAL + "train: {lr: -1}\n")
    result = cli("train", "--config", path, "--dry_run", "--batch_size", "0")
    assert result.exit_code == 2 and f"config file {path} is invalid (2 errors)" in result.output
    assert "train.batch_size: 0 is less than the minimum of 1 (given as --batch_size)" in result.output
    assert "train.lr: -1 is less than or equal to the minimum of 0\n" in result.output


@pytest.mark.parametrize("value, problem", [("-1", "-1 is less than the minimum of 0"),
                                            ("2.5", "2.5 is not of type 'integer'")])
def test_bad_lr_warm_up_is_one_line_naming_the_key(cli, value, problem):
    line = _one_line_error(cli("train", "--dry_run", "--set", f"train.lr_warmup_steps={value}"))
    assert line == f"Error: option --set train.lr_warmup_steps={value} is invalid: train.lr_warmup_steps: {problem}"


def test_a_warm_up_longer_than_the_run_is_one_error_line_before_training(cli, fc2_root, tmp_path):
    path = tmp_path / "warm.yaml"
    path.write_text(f"experiment: {{name: w, output_root: {tmp_path / 'runs'}}}\n"
                    f"data: {{train_dir: {fc2_root / 'train'}, val_dir: {fc2_root / 'val'}, input_height: 32, "
                    "input_width: 48}\ntrain: {num_epochs: 2, steps_per_epoch: 1, batch_size: 1, lr_warmup_steps: 3}\n")
    result = cli("train", "--config", path)
    assert result.exit_code == 2 and "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert errors == ["Error: train.lr_warmup_steps=3 exceeds the 2 planned optimizer steps (num_epochs 2 x "
                      "steps_per_epoch 1): the warm-up would never end; set train.lr_warmup_steps to at most 2, or "
                      "plan more steps"]
    assert not (tmp_path / "runs" / "w").exists()  # refused before the run directory was made


@pytest.mark.parametrize("key", ["input_height", "input_width"])
def test_huge_input_size_is_refused_by_the_schema(cli, tmp_path, key):
    path = tmp_path / "huge.yaml"
    path.write_text(MINIMAL.replace("val_dir: b}", f"val_dir: b, {key}: 100000}}"))
    line = _one_line_error(cli("config", "validate", path))
    assert f"data.{key}: 100000 is greater than the maximum of 4096" in line


def test_synth_height_beyond_the_maximum_is_refused(cli, tmp_path):
    from edgeflownas.data.synth import write_dataset

    result = cli("synth", "--out", tmp_path / "s", "--train", 0, "--val", 0, "--height", 60000)
    assert result.exit_code == 2 and "'--height': 60000 is not in the range 16<=x<=4096" in result.output
    with pytest.raises(DataError, match="height and width <= 4096, got 60000x512"):
        write_dataset(tmp_path / "s", 0, 0, seed=0, height=60000, width=512)


def test_report_pointing_at_a_folder_is_one_line_and_leaves_no_temp_file(cli, fc2_root, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("reports").mkdir()
    before = set(os.listdir(tmp_path))
    result = cli("data-check", "--train_dir", fc2_root / "train", "--val_dir", fc2_root / "val", "--report", "reports")
    line = _one_line_error(result)
    assert "--out reports is a folder" in line and "reports/data_check_report.json" in line
    assert set(os.listdir(tmp_path)) == before and not os.listdir("reports")
    Path("notes.txt").write_text("a file, not a folder")
    result = cli("data-check", "--train_dir", fc2_root / "train", "--val_dir", fc2_root / "val",
                 "--report", "notes.txt/r.json")
    assert "--out notes.txt/r.json: notes.txt is a file, not a folder" in _one_line_error(result)


def _efnas(*args: str, stdout=subprocess.PIPE, prelude: str = "", cwd=None) -> subprocess.CompletedProcess:
    """Run ``efnas ARGS`` in a fresh interpreter (after ``prelude``), as the console script does."""
    code = prelude + "import sys\nfrom edgeflownas.cli import main\nmain(sys.argv[1:])\n"
    return subprocess.run([sys.executable, "-c", code, *args], stdout=stdout, stderr=subprocess.PIPE, text=True,
                          timeout=300, cwd=cwd)


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
@pytest.mark.parametrize("args", [["--help"], ["config", "show"], ["data-check", "--train_dir", "{train}",
                                  "--val_dir", "{val}", "--report", "{report}"]], ids=["help", "config_show", "data_check"])
def test_stdout_on_a_full_device_is_one_line_on_stderr(fc2_root, tmp_path, args):
    args = [a.format(train=fc2_root / "train", val=fc2_root / "val", report=tmp_path / "r.json") for a in args]
    with open("/dev/full", "w") as full:
        done = _efnas(*args, stdout=full)
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr and "Exception ignored" not in done.stderr
    assert done.stderr.strip().splitlines() == [
        "efnas: cannot write to standard output: No space left on device (is the file or device it is redirected "
        "to full?); redirect it elsewhere"]


# Makes `import tensorflow` fail as it does in an environment installed without the [cpu]/[gpu] extra.
NO_TENSORFLOW = textwrap.dedent("""\
    import importlib.abc, sys
    class NoTensorFlow(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] == "tensorflow":
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
            return None
    sys.meta_path.insert(0, NoTensorFlow())
""")


def test_missing_tensorflow_says_how_to_install_it(fc2_root, tmp_path):
    config = tmp_path / "tiny.yaml"
    config.write_text(f"experiment: {{name: t, output_root: {tmp_path / 'out'}}}\n"
                      f"data: {{train_dir: {fc2_root / 'train'}, val_dir: {fc2_root / 'val'}, "
                      "input_height: 32, input_width: 48}\ntrain: {batch_size: 1}\n")
    for args in (["arch", "describe", "a000021222"], ["train", "--config", str(config)]):
        done = _efnas(*args, prelude=NO_TENSORFLOW, cwd=tmp_path)
        assert done.returncode == 1, done.stderr
        assert "Traceback" not in done.stderr, done.stderr
        assert done.stderr.strip().splitlines()[-1] == (
            f"Error: this command needs the Python module 'tensorflow', which is not installed for {sys.executable}: "
            "install TensorFlow with pip install -e '.[cpu]' (GPU node: '.[gpu]'), or run bash scripts/setup.sh")

"""`efnas data-check` and `efnas synth`: wiring, printed counts, exit codes, JSON report."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest


def test_clean_dataset_passes_and_prints_counts(cli, fc2_root, tmp_path):
    report = tmp_path / "report.json"
    result = cli("data-check", "--train_dir", fc2_root / "train", "--val_dir", fc2_root / "val", "--report", report)
    assert result.exit_code == 0, result.output
    assert "train_samples: 5" in result.output and "val_samples: 3" in result.output
    assert "bad samples: 0" in result.output and "data-check: ok" in result.output
    data = json.loads(report.read_text())
    assert data["ok"] and data["train_samples"] == 5 and data["val_samples"] == 3
    assert data["splits"]["val"]["image_size"] == [24, 32]


def test_config_file_supplies_the_directories(cli, fc2_root, write_config, default_raw, tmp_path):
    default_raw["data"]["train_dir"] = str(fc2_root / "train")
    default_raw["data"]["val_dir"] = str(fc2_root / "val")
    result = cli("data-check", "--config", write_config(default_raw), "--report", tmp_path / "r.json")
    assert result.exit_code == 0, result.output
    assert "train_samples: 5" in result.output and "val_samples: 3" in result.output


def test_empty_val_fails_naming_directory_and_pattern(cli, fc2_root, tmp_path):
    empty = fc2_root / "val_empty"
    empty.mkdir()
    report = tmp_path / "r.json"
    result = cli("data-check", "--train_dir", fc2_root / "train", "--val_dir", empty, "--report", report)
    assert result.exit_code == 1
    assert "val_samples: 0" in result.output
    assert f"val split is empty: no usable sample matching NNNNNNN-img_0.png" in result.output
    assert str(empty) in result.output
    data = json.loads(report.read_text())
    assert data["val_samples"] == 0 and not data["ok"] and "val split is empty" in data["failures"][0]


def test_nonexistent_root_fails_clearly_and_still_writes_the_report(cli, tmp_path):
    report = tmp_path / "r.json"
    result = cli("data-check", "--train_dir", tmp_path / "nope" / "train", "--val_dir", tmp_path / "nope" / "val",
                 "--report", report)
    assert result.exit_code == 1
    assert f"train split: {tmp_path / 'nope' / 'train'}: directory does not exist" in result.output
    assert "Traceback" not in result.output
    assert "directory does not exist" in json.loads(report.read_text())["failures"][0]


def test_one_split_alone_is_a_usage_error(cli, fc2_root, tmp_path):
    result = cli("data-check", "--train_dir", fc2_root / "train", "--report", tmp_path / "r.json")
    assert result.exit_code == 2 and "data-check checks both splits: --val_dir is missing" in result.output
    assert not (tmp_path / "r.json").exists()


def test_bad_samples_fail_unless_max_bad_allows_them(cli, fc2_root, tmp_path):
    zero = fc2_root / "val" / "0000001-img_0.png"
    zero.write_bytes(b"")
    (fc2_root / "train" / "0000004-img_1.png").unlink()
    args = ("data-check", "--train_dir", fc2_root / "train", "--val_dir", fc2_root / "val", "--report", tmp_path / "r.json")
    result = cli(*args)
    assert result.exit_code == 1
    assert "train_samples: 4" in result.output and "val_samples: 2" in result.output
    assert "missing_partner" in result.output and "unreadable_image" in result.output and str(zero) in result.output
    assert "2 bad samples (train: 1, val: 1) exceed --max_bad 0" in result.output
    data = json.loads((tmp_path / "r.json").read_text())
    assert not data["ok"]
    assert [b["path"] for b in data["splits"]["val"]["bad_samples"]] == [str(zero)]
    assert cli(*args, "--max_bad", "1").exit_code == 1
    assert cli(*args, "--max_bad", "2").exit_code == 0


def test_no_input_is_a_usage_error(cli):
    result = cli("data-check")
    assert result.exit_code == 2 and "needs --config FILE" in result.output


def test_synth_then_data_check_deep_without_tensorflow(tmp_path):
    code = (
        "import sys\n"
        "from click.testing import CliRunner\n"
        "from edgeflownas.cli import main\n"
        "r = CliRunner()\n"
        f"a = r.invoke(main, ['synth', '--out', {str(tmp_path)!r}, '--train', '3', '--val', '2', "
        "'--height', '48', '--width', '64', '--seed', '1'])\n"
        f"b = r.invoke(main, ['data-check', '--train_dir', {str(tmp_path / 'train')!r}, "
        f"'--val_dir', {str(tmp_path / 'val')!r}, '--deep', '--workers', '2'])\n"
        "print(a.exit_code, b.exit_code, 'tensorflow' in sys.modules)\n"
        "print(a.output, b.output)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0] == "0 0 False", done.stdout
    assert "train_samples: 3" in done.stdout and "val_samples: 2" in done.stdout


@pytest.mark.parametrize("args, expected", [
    (("--train", "1", "--val", "1", "--height", "8"), "Invalid value for '--height'"),
    (("--train", "-1", "--val", "1"), "Invalid value for '--train_samples'"),
])
def test_synth_rejects_bad_options(cli, tmp_path, args, expected):
    result = cli("synth", "--out", tmp_path, *args)
    assert result.exit_code == 2 and expected in result.output

"""What a newcomer meets first: study configs found from anywhere, Hydra-style overrides, one GPU, no such run."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent


def test_config_validate_recognises_a_study_config_from_another_directory(cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the study configs name their supernet configs beside them, not from the repository
    for preset in ("study_small.yaml", "study_fc2.yaml"):
        result = cli("config", "validate", ROOT / "configs" / preset)
        assert result.exit_code == 0, result.output
        assert result.output.strip() == f"{ROOT / 'configs' / preset}: valid (study config)"
    assert cli("config", "validate", ROOT / "configs" / "learnable_small.yaml").output.strip().endswith(": valid")


def test_a_study_config_names_its_supernet_config_relative_to_itself(tmp_path, monkeypatch):
    from launcher.study import load_study

    folder = tmp_path / "exp"
    folder.mkdir()
    shutil.copy(ROOT / "configs" / "learnable_small.yaml", folder / "supernet.yaml")
    study = {"study": {"name": "s"}, "supernet": {"config": "supernet.yaml"}}
    (folder / "study.yaml").write_text(yaml.safe_dump(study))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    loaded = load_study(folder / "study.yaml")
    assert loaded.section("supernet")["config"] == str(folder / "supernet.yaml")
    assert loaded.directory == elsewhere / "outputs" / "studies" / "s"  # locations stay relative to the cwd
    # A path written from the working directory (the older rule) still works when only it exists.
    study["supernet"]["config"] = "exp/supernet.yaml"
    (folder / "study.yaml").write_text(yaml.safe_dump(study))
    monkeypatch.chdir(tmp_path)
    assert load_study(folder / "study.yaml").section("supernet")["config"] == str(folder / "supernet.yaml")


def test_a_study_config_with_errors_is_checked_against_the_study_schema(cli, tmp_path):
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump({"study": {"nmae": "x"}, "supernet": {"config": str(ROOT / "configs" /
                                                                                       "learnable_small.yaml")}}))
    result = cli("config", "validate", path)
    assert result.exit_code == 2
    assert "nmae" in result.output and "train." not in result.output  # not the training schema's 8 errors


@pytest.mark.parametrize("args, hint", [
    (["train", "train.lr=1e-4", "eval.batch_size=4"], "--set train.lr=1e-4 --set eval.batch_size=4"),
    (["retrain", "--run", "r", "--arch", "best", "train.lr=1e-4"], "--set train.lr=1e-4"),
    (["export", "--run", "r", "--out", "o", "train.lr=1e-4"], "export takes no config overrides (efnas train, retrain and submit take --set"),
])
def test_a_hydra_style_override_gets_the_efnas_spelling(cli, args, hint):
    result = cli(*args)
    assert result.exit_code == 2
    assert "unexpected extra argument" in result.output and hint in result.output


def test_more_than_one_gpu_per_node_is_refused_with_the_reason(cli, tmp_path):
    raw = yaml.safe_load((ROOT / "configs" / "supernet_fc2_180x240.yaml").read_text())
    raw["slurm"]["gpus_per_node"] = 4
    path = tmp_path / "four.yaml"
    path.write_text(yaml.safe_dump(raw))
    result = cli("config", "validate", path)
    assert result.exit_code == 2
    assert "slurm.gpus_per_node: 4 GPUs would sit idle: a job trains on one GPU" in result.output
    raw["slurm"]["gpus_per_node"] = 1
    path.write_text(yaml.safe_dump(raw))
    assert cli("config", "validate", path).exit_code == 0


@pytest.mark.parametrize("args", [
    ["eval", "--arch", "pool"], ["search"], ["export", "--arch", "baseline", "--out", "{tmp}/model"],
    ["retrain", "--arch", "baseline", "--experiment_name", "x"], ["report"],
])
def test_a_missing_run_directory_is_no_such_run(cli, tmp_path, args):
    missing = tmp_path / "runs" / "typo"
    result = cli(*[a.replace("{tmp}", str(tmp_path)) for a in args], "--run", missing)
    assert result.exit_code == 2, result.output
    assert f"no such run: {missing} does not exist" in result.output
    assert "complete checkpoint" not in result.output and "Traceback" not in result.output

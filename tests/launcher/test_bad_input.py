"""Bad input to submit/status: clear one-line errors, non-zero exits, nothing submitted."""

from __future__ import annotations

import pytest

from edgeflownas.errors import SubmitError
from launcher import container


def test_no_sbatch_on_path_is_a_clear_error(cli, launch_config, tmp_path, monkeypatch):
    empty = tmp_path / "empty_bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    result = cli("submit", "--config", launch_config())
    assert result.exit_code == 1
    assert "'sbatch' not found on PATH" in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("name", ["../escape", "a/b", "x;rm -rf ~", "$(id)", "a b", "-rf"])
def test_experiment_names_with_separators_or_shell_metacharacters_are_rejected(cli, launch_config, name):
    result = cli("submit", "--config", launch_config(), "--experiment_name", name, "--dry_run")
    assert result.exit_code == 2, result.output
    assert "experiment.name" in result.output
    status = cli("status", "--output_root", "somewhere", "--", name)
    assert status.exit_code == 2
    assert "experiment name" in status.output


def test_sweep_with_an_invalid_value_submits_nothing(cli, launch_config, tmp_path):
    result = cli("submit", "--config", launch_config(), "--sweep", "lr=1e-4,-1")
    assert result.exit_code == 2
    assert "nothing submitted" in result.output and "train.lr: -1" in result.output
    assert not (tmp_path / "out").exists()


def test_missing_data_folder_is_reported_before_submission(cli, launch_config, tmp_path):
    result = cli("submit", "--config", launch_config(), "--val_dir", tmp_path / "nope", "--dry_run")
    assert result.exit_code == 1
    assert f"data.val_dir = {tmp_path / 'nope'}" in result.output and "not a directory" in result.output


def test_missing_container_image_is_a_clear_error(cli, launch_config, tmp_path):
    result = cli("submit", "--config", launch_config(), "--container", tmp_path / "missing.sif", "--dry_run")
    assert result.exit_code == 1
    assert f"container image {tmp_path / 'missing.sif'} does not exist" in result.output
    assert "apptainer build --fakeroot" in result.output


def test_no_apptainer_on_path_is_a_clear_error(tmp_path, monkeypatch):
    image = tmp_path / "efnas.sif"
    image.write_bytes(b"image")
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(SubmitError, match="'apptainer' not found on PATH"):
        container.prepare(image, [])


@pytest.mark.parametrize("python, submitit, expected", [
    ("2.7.18", None, "Python 2.7.18 in the image"),
    (None, "1.4.0", "submitit 1.4.0 in the image"),
])
def test_version_mismatch_inside_the_image_is_refused(fake_apptainer, tmp_path, python, submitit, expected):
    image = tmp_path / "efnas.sif"
    image.write_bytes(b"image")
    fake_apptainer(python=python, submitit=submitit)
    with pytest.raises(SubmitError) as info:
        container.prepare(image, [tmp_path])
    assert expected in str(info.value) and "does not match the submitting environment" in str(info.value)


def test_matching_image_is_accepted_and_runs_its_own_python(fake_apptainer, tmp_path):
    image = tmp_path / "efnas.sif"
    image.write_bytes(b"image")
    checked = container.prepare(image, [tmp_path / "b", tmp_path, tmp_path / "a" / "c"])
    import submitit

    assert checked.versions["submitit"] == submitit.__version__
    assert checked.binds == (str(tmp_path),)
    assert checked.python().startswith("apptainer exec --nv --bind ")


def test_image_whose_python_fails_is_refused(fake_apptainer, tmp_path, monkeypatch):
    image = tmp_path / "efnas.sif"
    image.write_bytes(b"image")
    monkeypatch.setenv("PYTHONPATH", str(tmp_path / "shadow"))
    (tmp_path / "shadow").mkdir()
    (tmp_path / "shadow" / "submitit.py").write_text("raise ImportError('submitit is not installed in this image')\n")
    with pytest.raises(SubmitError, match="cannot run efnas inside"):
        container.prepare(image, [])


def test_sweep_without_equals_names_the_option_and_its_form(cli, launch_config, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = cli("submit", "--config", launch_config(), "--sweep", "lr", "--dry_run")
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert ("--sweep lr: expected KEY=V1,V2,... (e.g. --sweep lr=1e-4,3e-4) or the path of a YAML sweep file, "
            "but there is no '=' and 'lr' is not a file") in result.output
    assert "config file lr" not in result.output


@pytest.mark.parametrize("content, expected", [
    (b"lr: [0.1]\nseed: [1]\nlr: [0.2]\n", "key 'lr' is given twice (lines 1 and 3)"),
    (b"\xff\xfe\x00binary", "is not UTF-8 text"),
    (b"- 1\n- 2\n", "must be a mapping {key: [values]} at top level"),
], ids=["duplicate_key", "binary", "not_a_mapping"])
def test_bad_sweep_file_is_refused_as_a_sweep_file(cli, launch_config, tmp_path, content, expected):
    sweep = tmp_path / "grid.yaml"
    sweep.write_bytes(content)
    result = cli("submit", "--config", launch_config(), "--sweep", sweep, "--dry_run")
    assert result.exit_code == 2, result.output
    assert f"sweep file {sweep}" in result.output and expected in result.output
    assert "Traceback" not in result.output


def test_non_finite_sweep_value_submits_nothing(cli, launch_config, tmp_path):
    result = cli("submit", "--config", launch_config(), "--sweep", "lr=1e-4,1e400", "--dry_run")
    assert result.exit_code == 2
    assert "sweep trial 'lr=inf' is invalid: train.lr: inf is not a finite number" in result.output
    assert not (tmp_path / "out").exists()


def test_bad_cli_value_of_submit_names_the_option(cli, launch_config):
    result = cli("submit", "--config", launch_config(), "--lr", "nan", "--dry_run")
    assert result.exit_code == 2
    assert result.output.strip() == "Error: option --lr is invalid: train.lr: nan is not a finite number; give a finite value"

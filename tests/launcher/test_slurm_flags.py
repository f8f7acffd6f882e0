"""slurm.additional_parameters (any sbatch flag) and slurm.timeout_min, in the dry-run script and the plain sbatch template."""

from __future__ import annotations

import subprocess

import pytest
import yaml

from edgeflownas.config import resolve
from launcher.slurm import sbatch_parameters
from launcher.template import smoke_template

EXTRA = {"constraint": "a100", "exclude": "node[01-03]", "gres": "gpu:a100:1", "mail_type": "END",
         "mail-user": "me@example.org", "reservation": "paper", "exclusive": True}


def _config(launch_config, **slurm):
    """launch_config with its slurm section replaced key by key (time_min removed when timeout_min is given)."""
    path = launch_config()
    raw = yaml.safe_load(path.read_text())
    if "timeout_min" in slurm:
        raw["slurm"].pop("time_min")
    raw["slurm"].update(slurm)
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def test_additional_parameters_reach_the_sbatch_script(cli, launch_config, normalise, check_golden):
    result = cli("submit", "--config", _config(launch_config, additional_parameters=EXTRA, timeout_min=45),
                 "--dry_run")
    assert result.exit_code == 0, result.output
    check_golden("extra.sbatch", normalise(result.output))
    for line in ("#SBATCH --constraint=a100", "#SBATCH --exclude='node[01-03]'", "#SBATCH --gres=gpu:a100:1",
                 "#SBATCH --mail-type=END", "#SBATCH --mail-user=me@example.org", "#SBATCH --reservation=paper",
                 "#SBATCH --exclusive", "#SBATCH --time=45"):
        assert line in result.output.splitlines(), line


def test_additional_parameters_go_to_submitit_by_its_own_parameter_name(launch_config):
    from submitit.slurm.slurm import SlurmExecutor

    slurm = resolve(_config(launch_config, additional_parameters=EXTRA)).config.slurm
    params = sbatch_parameters(slurm, "efnas-x")
    assert params["additional_parameters"] == EXTRA
    assert set(params) <= SlurmExecutor._valid_parameters()


def test_set_adds_one_sbatch_flag_from_the_command_line(cli, launch_config):
    result = cli("submit", "--config", launch_config(), "--dry_run",
                 "--set", "slurm.additional_parameters.constraint=v100", "--set", "slurm.timeout_min=30")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert "#SBATCH --constraint=v100" in lines
    assert "#SBATCH --time=30" in lines  # the command line's timeout_min wins over the file's time_min (90)
    both = cli("submit", "--config", launch_config(), "--dry_run", "--set", "slurm.timeout_min=30",
               "--set", "slurm.time_min=20")
    assert both.exit_code == 2 and "slurm.timeout_min and slurm.time_min are both given" in both.output


def test_t09_template_writes_the_same_flags(launch_config, tmp_path):
    text = smoke_template(resolve(_config(launch_config, additional_parameters=EXTRA)).config.slurm)
    assert "#SBATCH --exclude='node[01-03]'" in text and "#SBATCH --exclusive" in text
    script = tmp_path / "smoke.sbatch"
    script.write_text(text)
    assert subprocess.run(["bash", "-n", str(script)], capture_output=True).returncode == 0


@pytest.mark.parametrize("slurm, message", [
    ({"additional_parameters": {"time": 5}}, "slurm.additional_parameters.time: sbatch --time is set by slurm.time_min"),
    ({"additional_parameters": {"output": "x.log"}}, "sbatch --output is set by slurm.log_dir"),
    ({"additional_parameters": {"Bad Key": "x"}}, "slurm.additional_parameters: 'Bad Key' does not match"),
    ({"additional_parameters": {"exclusive": False}}, "slurm.additional_parameters.exclusive"),
    ({"timeout_min": 30, "time_min": 40}, "slurm.timeout_min and slurm.time_min are both given"),
])
def test_bad_slurm_flags_are_refused_before_anything_is_submitted(cli, launch_config, slurm, message):
    path = launch_config()
    raw = yaml.safe_load(path.read_text())
    raw["slurm"].update(slurm)
    path.write_text(yaml.safe_dump(raw))
    result = cli("submit", "--config", path, "--dry_run")
    assert result.exit_code == 2, result.output
    assert message in result.output

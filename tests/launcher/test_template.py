"""HPC smoke template: same parameters as the local smoke command; only data root, log path, resources differ."""

from __future__ import annotations

import subprocess

from edgeflownas.config import resolve
from launcher.template import (DATA_ROOT_OPTIONS, LOG_PATH, SMOKE_COMMAND, TEMPLATE_PATH, smoke_template,
                               template_command)

LOCAL_SMOKE = ("efnas train --gpu_device 0 --num_epochs 2 --batch_size 32 --lr 1e-4 "
               "--config configs/supernet_fc2_180x240.yaml --fast_mode").split()


def test_committed_template_is_the_generated_one():
    assert TEMPLATE_PATH.read_text() == smoke_template(resolve(None).config.slurm), \
        "regenerate: python -m launcher.template > launcher/templates/hpc_smoke.sbatch"


def test_parameters_equal_the_local_smoke_command_plus_only_the_data_root():
    command = template_command(TEMPLATE_PATH.read_text())
    assert list(SMOKE_COMMAND) == LOCAL_SMOKE
    assert command[:len(LOCAL_SMOKE)] == LOCAL_SMOKE
    extra = command[len(LOCAL_SMOKE):]
    assert extra == list(DATA_ROOT_OPTIONS)
    assert all(value.startswith("$DATA_ROOT/") for value in extra[1::2])


def test_everything_else_is_a_resource_or_the_log_path():
    text = TEMPLATE_PATH.read_text()
    directives = [line.split()[1].split("=")[0] for line in text.splitlines() if line.startswith("#SBATCH")]
    allowed = {"--job-name", "--time", "--nodes", "--cpus-per-task", "--mem", "--gpus-per-node", "--partition",
               "--account", "--qos", "--output"}
    assert set(directives) <= allowed
    assert f"#SBATCH --output={LOG_PATH}" in text


def test_every_smoke_option_exists_in_efnas_train(cli):
    help_text = cli("train", "--help").output
    for token in LOCAL_SMOKE[2:] + list(DATA_ROOT_OPTIONS):
        if token.startswith("--"):
            assert token in help_text, token


def test_template_is_valid_bash():
    assert subprocess.run(["bash", "-n", str(TEMPLATE_PATH)], capture_output=True).returncode == 0

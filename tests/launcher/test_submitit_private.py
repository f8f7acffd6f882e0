"""The submitit private API efnas uses (launcher/submitit_private.py) still exists and behaves as relied on.

A submitit release that renames or reshapes any of these fails here, by name,
instead of in a dry run or on a preempted job.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import re
import signal

import pytest
from submitit.core.core import PicklingExecutor
from submitit.core.job_environment import JobEnvironment
from submitit.slurm import slurm as submitit_slurm

from edgeflownas.config import resolve
from launcher import submitit_private
from launcher.slurm import sbatch_parameters


def test_make_sbatch_string_takes_every_parameter_efnas_passes(tmp_path):
    accepted = inspect.signature(submitit_slurm._make_sbatch_string).parameters
    slurm = dataclasses.replace(resolve(None).config.slurm, gpus_per_node=1, partition="gpu", account="a", qos="q",
                                additional_parameters={"constraint": "a100"})
    params = sbatch_parameters(slurm, "efnas-x", setup=["echo setup"], teardown=["echo done"])
    missing = sorted({"command", "folder", "map_count", *params} - set(accepted))
    assert not missing, f"submitit's _make_sbatch_string no longer takes {missing}"
    text = submitit_private.make_sbatch_string("python -u -m launcher.job_entry /x", tmp_path, 3, **params)
    assert "#SBATCH --job-name=efnas-x" in text and "#SBATCH --array=0-2%" in text
    assert "#SBATCH --constraint=a100" in text and "python -u -m launcher.job_entry /x" in text


def test_executor_command_replaces_submitits_runner_in_the_script(tmp_path):
    assert isinstance(inspect.getattr_static(submitit_slurm.SlurmExecutor, "_submitit_command_str"), property)
    for submits in (PicklingExecutor, submitit_slurm.SlurmExecutor):  # single jobs, then arrays
        assert "self._submitit_command_str" in inspect.getsource(submits._internal_process_submissions)
    executor = submitit_private.executor_class(lambda ex: f"run {ex.folder.name}")(tmp_path / "logs", python="py")
    assert executor._submitit_command_str == "run logs"


def test_requeue_hook_is_the_one_the_preemption_handler_calls(monkeypatch):
    assert list(inspect.signature(submitit_slurm.SlurmJobEnvironment._requeue).parameters) == ["self", "countdown"]
    source = inspect.getsource(inspect.getmodule(JobEnvironment))
    assert "._requeue(" in source, "submitit's checkpoint handler no longer calls environment._requeue"
    called = []
    monkeypatch.setattr(submitit_slurm.SlurmJobEnvironment, "_requeue", submitit_slurm.SlurmJobEnvironment._requeue)
    submitit_private.install_requeue(lambda env, countdown: called.append(countdown))
    submitit_slurm.SlurmJobEnvironment._requeue(object(), 2)
    assert called == [2]


def test_usr_signal_runner_logger_and_job_id_parser():
    assert submitit_private.usr_signal() == signal.SIGUSR2
    assert callable(inspect.unwrap(submitit_private.run_submitit_main))
    from submitit.core.submission import submitit_main

    assert list(inspect.signature(submitit_main).parameters) == []
    assert hasattr(submitit_private.submitit_logger(), "info")
    assert submitit_private.read_job_id("12_[1-3]") == [("12", "1", "3")]
    assert submitit_private.read_job_id("12_4") == [("12", "4")]


@pytest.mark.parametrize("module", ["slurm", "job", "job_entry", "search_array", "submit", "sweep", "status"])
def test_no_other_launcher_module_touches_submitit_privates(module):
    source = inspect.getsource(importlib.import_module(f"launcher.{module}"))
    for name in ("_make_sbatch_string", "_submitit_command_str", "_usr_sig", "_requeue", "submitit_main"):
        assert not re.search(rf"\b{name}\b", source), \
            f"launcher/{module}.py uses submitit's {name}: go through launcher.submitit_private"

"""Shared fixtures: a CLI runner, a writer for small YAML configs, small and read-only file systems."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Optional

import pytest
import submitit  # noqa: F401  -- first, see below
import yaml
from click.testing import CliRunner

from edgeflownas.cli import main
from edgeflownas.config import default_config_path

REPO = Path(__file__).resolve().parent.parent

# submitit runs logging.config.dictConfig when first imported, which closes every existing logging handler.
# absl's handler (imported with TensorFlow) closes the stream it was created with unless that is the current
# sys.stderr -- and inside click's CliRunner it is not, so a test that imported TensorFlow followed by one that
# imports submitit through the CLI used to close pytest's captured stderr.  Importing submitit here, before any
# test imports TensorFlow, makes the suite independent of test order.


# What a source distribution holds: setup.py maps schemas/, configs/ and tools/data_check/ into the package.
SOURCE = ("pyproject.toml", "setup.py", "README.md", "edgeflownas", "launcher", "schemas", "configs",
          "tools/data_check")


def _copy_source(target: Path) -> Path:
    """The repository files a build reads, copied so the build leaves nothing in the checkout."""
    for name in SOURCE:
        origin = REPO / name
        if origin.is_dir():
            shutil.copytree(origin, target / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(origin, target / name)
    return target


@pytest.fixture(scope="session")
def copy_source():
    """``copy_source(target)``: the files a build of efnas reads, copied to ``target`` (returned)."""
    return _copy_source


@pytest.fixture(scope="session")
def edge_venv(tmp_path_factory, copy_source) -> Path:
    """A fresh venv with efnas installed from a copy of this tree with only the ``edge`` extra (pip's cache)."""
    import subprocess
    import sys

    root = tmp_path_factory.mktemp("edge_venv")
    source = copy_source(root / "source")
    subprocess.run([sys.executable, "-m", "venv", str(root / "venv")], check=True, timeout=300)
    done = subprocess.run([str(root / "venv" / "bin" / "python"), "-m", "pip", "install", "--quiet",
                           f"{source}[edge]"], capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    return root / "venv"


@pytest.fixture
def cli():
    """Invoke ``efnas`` in-process; returns the click Result."""
    runner = CliRunner()

    def invoke(*args: str):
        return runner.invoke(main, [str(a) for a in args], catch_exceptions=False)

    return invoke


def _mount_tmpfs(point: Path, options: str) -> Optional[str]:
    """Mount a tmpfs with ``options`` on the new folder ``point``; None, or why it could not be mounted."""
    point.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(point)], capture_output=True,
                          text=True)
    return None if done.returncode == 0 else (done.stderr.strip() or f"mount exited with {done.returncode}")


@pytest.fixture
def tmpfs(tmp_path):
    """``tmpfs(name, size, read_only=False)``: a tmpfs of ``size`` ("64k", "2m") at ``tmp_path / name``;
    ``tmpfs.make_read_only(point)`` remounts one of them read-only (after the test has put files on it).

    The one way the suite makes a small disk to fill or a read-only file system.  Mounting needs root (CI runs as
    root); where it is not permitted the test is skipped with mount's reason.  Unmounted after the test (lazily,
    so a file a failed test left open does not keep it).
    """
    mounted = []

    def mount(name: str, size: str, read_only: bool = False) -> Path:
        point = tmp_path / name
        why = _mount_tmpfs(point, f"{'ro,' if read_only else ''}size={size}")
        if why is not None:
            pytest.skip(f"cannot mount a tmpfs at {point} (needs root; CI runs as root): {why}")
        mounted.append(point)
        return point

    def make_read_only(point: Path) -> None:
        assert point in mounted, f"{point} is not a tmpfs of this fixture"
        done = subprocess.run(["mount", "-o", "remount,ro", str(point)], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr

    mount.make_read_only = make_read_only
    yield mount
    for point in mounted:
        subprocess.run(["umount", "-l", str(point)], check=True)


@pytest.fixture
def fill_disk():
    """``fill_disk(disk, leave=0)``: a file ``disk/filler`` that takes all but about ``leave`` free bytes."""

    def fill(disk: Path, leave: int = 0) -> None:
        stat = os.statvfs(disk)
        with open(disk / "filler", "wb") as handle:
            handle.write(b"\0" * max(0, stat.f_bavail * stat.f_frsize - leave))

    return fill


@pytest.fixture
def read_only_folder(tmp_path, tmpfs):
    """``tmp_path / "ro"``, where nothing can be written: a read-only tmpfs for root (who ignores permissions),
    a folder without write permission for other users."""
    if os.geteuid() == 0:
        yield tmpfs("ro", "1m", read_only=True)
        return
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    yield folder
    folder.chmod(0o755)


@pytest.fixture
def system_tmp(tmp_path, monkeypatch) -> Path:
    """An empty ``tmp_path / "system_tmp"`` made the system temp directory (TMPDIR, Python's ``tempfile``), to
    show that a command leaves nothing there."""
    import tempfile

    folder = tmp_path / "system_tmp"
    folder.mkdir()
    monkeypatch.setenv("TMPDIR", str(folder))
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


@pytest.fixture
def default_raw() -> dict:
    """The shipped config as a plain mapping (a fresh copy per test)."""
    return yaml.safe_load(default_config_path().read_text())


@pytest.fixture
def write_config(tmp_path):
    """Write a mapping (or raw text) to a YAML file and return its path."""

    def write(content, name: str = "config.yaml") -> Path:
        path = tmp_path / name
        path.write_text(content if isinstance(content, str) else yaml.safe_dump(content, sort_keys=False))
        return path

    return write


@pytest.fixture(scope="session")
def tiny_fc2(tmp_path_factory) -> Path:
    """Synthetic FC2 root shared by the training tests: train/ 16, val/ 4 samples at 48x64 (read-only)."""
    from edgeflownas.data.synth import write_dataset

    root = tmp_path_factory.mktemp("tiny_fc2") / "FC2"
    write_dataset(root, train=16, val=4, seed=1, height=48, width=64)
    return root


# A tiny trained supernet run for the search tests (2 epochs at 32x48, 8-channel stem).
SEARCH_RUN = {
    "experiment.name": "search_tiny", "experiment.seed": 5,
    "data.input_height": 32, "data.input_width": 48, "data.num_workers": 1, "data.prefetch_batches": 2,
    "model.init_neurons": 8,
    "train.num_epochs": 2, "train.batch_size": 2, "train.steps_per_epoch": 2, "train.lr": 0.001,
    "train.log_every_steps": 1000, "eval.bn_recal_batches": 2,
    "early_stop.min_epochs_before_early_stop": 0,
    "runtime.deterministic": True, "runtime.graph_optimizations": False,
}


@pytest.fixture(scope="session")
def search_run(tiny_fc2, tmp_path_factory) -> Path:
    """A real supernet run directory to search (read-only)."""
    from edgeflownas.config import default_config_path, load_yaml, resolve_mapping
    from edgeflownas.train.api import run_training

    overrides = dict(SEARCH_RUN, **{
        "experiment.output_root": str(tmp_path_factory.mktemp("search_runs")),
        "data.train_dir": str(tiny_fc2 / "train"), "data.val_dir": str(tiny_fc2 / "val")})
    return run_training(resolve_mapping(load_yaml(default_config_path()), overrides)).run_dir


@pytest.fixture(autouse=True)
def _op_determinism_per_test():
    """Every test starts with TensorFlow's op determinism off, as a fresh process has it.

    A deterministic training or evaluation enables it for the whole process (TensorFlow has no scoped form),
    and then any later test that builds a graph without a seed fails with "Random ops require a seed".
    """
    yield
    import sys

    if "tensorflow" in sys.modules:
        from tensorflow.python.framework import config as tf_config

        if tf_config.is_op_determinism_enabled():
            tf_config.disable_op_determinism()

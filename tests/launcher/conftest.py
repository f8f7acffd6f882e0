"""Fixtures of the launcher tests: tiny configs, a fake apptainer, path normalisation."""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

import pytest
import yaml

GOLDEN = Path(__file__).resolve().parent / "golden"


@pytest.fixture
def launch_config(tmp_path):
    """Write a small config (data folders created empty) and return its path; kwargs patch sections."""

    def write(name: str = "golden", **sections) -> Path:
        data = tmp_path / "data"
        (data / "train").mkdir(parents=True, exist_ok=True)
        (data / "val").mkdir(parents=True, exist_ok=True)
        raw = {
            "experiment": {"name": name, "output_root": str(tmp_path / "out"), "seed": 3},
            "data": {"train_dir": str(data / "train"), "val_dir": str(data / "val")},
            "slurm": {"partition": "gpu", "account": "proj42", "qos": "normal", "time_min": 90,
                      "cpus_per_task": 6, "mem_gb": 24, "setup": ["module load cuda/12.3"]},
        }
        for section, values in sections.items():
            raw.setdefault(section, {}).update(values)
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump(raw, sort_keys=False))
        return path

    return write


@pytest.fixture
def normalise(tmp_path):
    """Replace machine-specific paths in command output by stable placeholders."""

    def apply(text: str) -> str:
        return (text.replace(str(tmp_path), "<TMP>")
                .replace(sys.executable, "<PYTHON>"))

    return apply


@pytest.fixture
def check_golden():
    """Compare text with tests/launcher/golden/<name>; EFNAS_UPDATE_GOLDEN=1 rewrites the file."""

    def check(name: str, text: str) -> None:
        path = GOLDEN / name
        if os.environ.get("EFNAS_UPDATE_GOLDEN") == "1":
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        assert path.is_file(), f"golden file {path} missing: run with EFNAS_UPDATE_GOLDEN=1 once and review it"
        assert text == path.read_text(), f"output differs from {path} (EFNAS_UPDATE_GOLDEN=1 to accept)"

    return check


FAKE_APPTAINER = """#!{python}
import json, os, sys
args = sys.argv[1:]
if not args or args[0] != "exec":
    sys.exit("fake apptainer: only 'exec' is supported")
args = args[1:]
while args[0].startswith("--"):
    args = args[2:] if args[0] == "--bind" else args[1:]
image, command = args[0], args[1:]
if not os.path.isfile(image):
    sys.exit(f"FATAL: could not open image {{image}}: no such file")
fake = os.environ.get("FAKE_APPTAINER_VERSIONS")
if fake and command[1:2] == ["-c"] and "submitit.__version__" in command[2]:
    print(fake)
    sys.exit(0)
os.execv({python!r}, [{python!r}] + command[1:])
"""


@pytest.fixture(scope="session")
def fake_apptainer_factory():
    """Write a stand-in 'apptainer' into a folder; returns the PATH that puts it first.

    apptainer cannot be installed here.  ``exec [--nv] [--bind P] IMAGE python3
    ARGS`` runs ARGS with this test's interpreter on the host, or, when
    FAKE_APPTAINER_VERSIONS is set, answers the version probe with it (a
    mismatched image).
    """

    def make(bin_dir: Path) -> str:
        bin_dir.mkdir(parents=True, exist_ok=True)
        script = bin_dir / "apptainer"
        script.write_text(FAKE_APPTAINER.format(python=sys.executable))
        script.chmod(script.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
        return f"{bin_dir}{os.pathsep}{os.environ['PATH']}"

    return make


@pytest.fixture
def fake_apptainer(tmp_path, monkeypatch, fake_apptainer_factory):
    """The stand-in apptainer first on PATH; returns a setter for the versions its probe reports."""
    monkeypatch.setenv("PATH", fake_apptainer_factory(tmp_path / "fakebin"))

    def set_versions(python: str = None, submitit: str = None) -> None:
        import json
        import platform

        import submitit as real

        monkeypatch.setenv("FAKE_APPTAINER_VERSIONS", json.dumps(
            {"python": python or platform.python_version(), "submitit": submitit or real.__version__,
             "efnas": "0.1.0"}))

    return set_versions

CLUSTER_SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "slurm_cluster.sh"


@pytest.fixture(scope="session")
def slurm_cluster():
    """A real one-node SLURM cluster (scripts/slurm_cluster.sh up); skipped unless root on Debian."""
    import subprocess

    if os.geteuid() != 0:
        pytest.skip("real-SLURM tests need root: scripts/slurm_cluster.sh installs and starts munge, MariaDB, "
                    "slurmdbd, slurmctld and slurmd (CI runs as root)")
    if not Path("/etc/debian_version").is_file():
        pytest.skip("real-SLURM tests need Debian: scripts/slurm_cluster.sh installs SLURM with apt-get")
    result = subprocess.run(["bash", str(CLUSTER_SCRIPT), "up"], capture_output=True, text=True, timeout=1200)
    if result.returncode != 0:
        pytest.fail(f"bringing up the SLURM test cluster failed (exit {result.returncode}):\n{result.stderr[-4000:]}")
    return {"partition": "debug"}

"""A non-editable install describes itself: schema, default config and the legacy list audit ship as package data."""

from __future__ import annotations

import os
import shutil
import site
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
def _venv_with_test_dependencies(path: Path) -> Path:
    """A fresh venv that sees this environment's dependencies (a .pth line) but not its editable efnas."""
    subprocess.run([sys.executable, "-m", "venv", str(path)], check=True, timeout=300)
    python = path / "bin" / "python"
    purelib = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             check=True, capture_output=True, text=True).stdout.strip()
    # A plain path line does not run the .pth files of that folder, so the editable finder of this checkout
    # stays out and `import edgeflownas` can only find the installed copy.
    Path(purelib, "efnas_test_dependencies.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    return python


@pytest.mark.slow
def test_non_editable_install_runs_from_an_empty_directory(tmp_path, copy_source):
    source = copy_source(tmp_path / "source")
    python = _venv_with_test_dependencies(tmp_path / "venv")
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--no-deps", str(source)], check=True,
                   timeout=600, capture_output=True)
    shutil.rmtree(source)  # the installed package must not need the tree it was built from
    efnas = tmp_path / "venv" / "bin" / "efnas"
    empty = tmp_path / "empty"
    empty.mkdir()
    # Only what the venv installed: a PYTHONPATH (e.g. a source checkout) must not stand in for it.
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}

    def run(*args: object) -> str:
        done = subprocess.run([str(efnas), *map(str, args)], cwd=empty, capture_output=True, text=True, timeout=300,
                              env=env)
        assert done.returncode == 0, f"efnas {' '.join(map(str, args))}:\n{done.stdout}\n{done.stderr}"
        return done.stdout

    where = subprocess.run([str(python), "-c", "import edgeflownas; print(edgeflownas.__file__)"], cwd=empty,
                           check=True, capture_output=True, text=True, env=env).stdout
    assert str(tmp_path / "venv") in where, where
    assert "site-packages" in run("config", "schema")
    run("config", "validate", REPO / "configs" / "supernet_fc2_180x240.yaml")
    resolved = run("train", "--dry_run").splitlines()
    assert resolved[0].startswith(f"# resolved config from {tmp_path / 'venv'}")
    assert resolved[-1].startswith("# config_hash")

    data, lists = tmp_path / "fc2", tmp_path / "lists"
    run("synth", "--out", data, "--train", 2, "--val", 1, "--height", 32, "--width", 48)
    lists.mkdir()
    (lists / "FC2_dirnames.txt").write_text("".join(f"{path}\n" for path in sorted(data.glob("*/*-img_0.png"))))
    (lists / "FC2_train.txt").write_text("0\n1\n")
    (lists / "FC2_val.txt").write_text("2\n")
    checked = run("data-check", "--train_dir", data / "train", "--val_dir", data / "val", "--lists", lists,
                  "--out", tmp_path / "report.json")
    assert "train_samples: 2" in checked and "data-check: ok" in checked

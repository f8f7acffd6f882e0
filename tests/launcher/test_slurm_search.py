"""``efnas search --slurm`` on the real one-node SLURM: each generation is one job array writing to the store."""

from __future__ import annotations

import json

import pytest
import yaml
from click.testing import CliRunner

from edgeflownas.cli import main

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

FIXED = ("EB0=0", "EB1=0", "DB0=0", "DB1=0", "H1=1", "H3=1")


def test_search_generations_run_as_job_arrays_and_match_a_local_search(slurm_cluster, search_run, tmp_path,
                                                                         fake_apptainer):
    config = tmp_path / "slurm.yaml"
    config.write_text(yaml.safe_dump({
        "experiment": {"name": "search_slurm", "output_root": str(tmp_path / "unused")},
        "data": {"train_dir": str(tmp_path / "unused"), "val_dir": str(tmp_path / "unused_val")},
        "slurm": {"partition": slurm_cluster["partition"], "gpus_per_node": 0, "cpus_per_task": 1, "mem_gb": 1,
                  "time_min": 10, "array_parallelism": 2}}))
    args = ["search", "--run", str(search_run), "--budget", "3", "--population", "3", "--seed", "2", "--json"]
    args += [part for fix in FIXED for part in ("--fix", fix)]
    image = tmp_path / "efnas.sif"  # the tasks run through the stand-in apptainer (tests/launcher/conftest.py)
    image.write_bytes(b"not a real image")
    remote = CliRunner().invoke(main, args + ["--out", str(tmp_path / "remote"), "--slurm", "--config", str(config),
                                              "--container", str(image)])
    assert remote.exit_code == 0, remote.output
    scripts = "".join(p.read_text() for p in (tmp_path / "remote" / "slurm").glob("*.sh"))
    assert "apptainer exec" in scripts and str(image) in scripts
    store = tmp_path / "remote" / "store"
    task_files = sorted(store.glob("task-*.jsonl"))
    arrays = {path.stem.split("_")[0] for path in task_files}
    assert len(arrays) == 2 and not (store / "driver.jsonl").exists()  # 1 generation + the marked subnets
    local = CliRunner().invoke(main, args + ["--out", str(tmp_path / "local")])
    assert local.exit_code == 0, local.output
    first, second = json.loads(remote.stdout), json.loads(local.stdout)
    assert first["ranked"] == second["ranked"]
    for a, b in zip(first["front_macs"], second["front_macs"]):
        assert a["name"] == b["name"] and a["epe"] == pytest.approx(b["epe"], rel=1e-6)
    again = CliRunner().invoke(main, args + ["--out", str(tmp_path / "remote"), "--slurm", "--config", str(config),
                                             "--container", str(image)])
    assert again.exit_code == 0 and "job array" not in again.stderr and "SLURM job" not in again.stderr
    assert sorted(store.glob("task-*.jsonl")) == task_files


def test_slurm_options_without_slurm_are_refused(search_run, tmp_path):
    result = CliRunner().invoke(main, ["search", "--run", str(search_run), "--array_tasks", "2"])
    assert result.exit_code == 2 and "only apply with --slurm" in result.output

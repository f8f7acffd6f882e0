"""``efnas submit --retrain RUN --arch ...``: one job array over the codes (crossed with a sweep), validated first."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from edgeflownas.cli import main


def test_retrains_of_several_codes_and_seeds_are_one_array(search_run, tmp_path):
    result = CliRunner().invoke(main, [
        "submit", "--retrain", str(search_run), "--arch", "baseline;0,0,0,0,0,0,0,0,0", "--sweep", "seed=1,2",
        "--experiment_name", "rt", "--output_root", str(tmp_path), "--init", "supernet", "--dry_run"])
    assert result.exit_code == 0, result.output
    out = result.output
    assert "#SBATCH --array=0-3" in out
    for trial in ("a000021222_seed=1", "a000021222_seed=2", "a000000000_seed=1", "a000000000_seed=2"):
        assert re.search(rf"# {re.escape(trial)}: submit -> {re.escape(str(tmp_path / 'rt' / trial))}", out), out
    assert "model.fixed_arch_code" in out


def test_retrain_of_the_pool_and_bad_input(search_run, tmp_path):
    pool = CliRunner().invoke(main, ["submit", "--retrain", str(search_run), "--arch", "pool", "--experiment_name",
                                     "p", "--output_root", str(tmp_path), "--dry_run"])
    assert pool.exit_code == 0, pool.output
    assert "#SBATCH --array=0-11" in pool.output
    no_arch = CliRunner().invoke(main, ["submit", "--retrain", str(search_run), "--experiment_name", "x", "--dry_run"])
    assert no_arch.exit_code == 2 and "--retrain needs --arch" in no_arch.output
    no_name = CliRunner().invoke(main, ["submit", "--retrain", str(search_run), "--arch", "baseline", "--dry_run"])
    assert no_name.exit_code == 2 and "--experiment_name" in no_name.output
    stray = CliRunner().invoke(main, ["submit", "--arch", "baseline", "--dry_run"])
    assert stray.exit_code == 2 and "--retrain RUN only" in stray.output


@pytest.mark.slurm
@pytest.mark.slow
def test_retrains_run_as_one_array_on_the_real_cluster(slurm_cluster, search_run, tmp_path):
    from launcher import slurm
    from launcher.job import read_result
    from launcher.records import latest_by_trial, read_records

    result = CliRunner().invoke(main, [
        "submit", "--retrain", str(search_run), "--arch", "baseline;0,0,0,0,0,0,0,0,0", "--init", "supernet",
        "--experiment_name", "rt", "--output_root", str(tmp_path), "--num_epochs", "1",
        "--set", f"slurm.partition={slurm_cluster['partition']}", "--set", "slurm.gpus_per_node=0",
        "--set", "slurm.cpus_per_task=1", "--set", "slurm.mem_gb=1", "--set", "slurm.time_min=10"])
    assert result.exit_code == 0, result.output
    assert "submitted job array" in result.output
    records = latest_by_trial(read_records(tmp_path / "rt"))
    assert set(records) == {"a000021222", "a000000000"}
    deadline = time.time() + 600
    while time.time() < deadline:
        states = slurm.query_states(r["job_id"] for r in records.values())
        if len(states) == 2 and not any(s.active for s in states.values()):
            break
        time.sleep(3)
    for trial, record in records.items():
        done = read_result(tmp_path / "rt" / trial)
        assert done is not None, (trial, states, Path(record["stderr"]).read_text()[-3000:])
        assert done["result"]["epochs_done"] == 1
        config = json.loads((tmp_path / "rt" / trial / "train_manifest.json").read_text())["resolved_config"]
        assert config["train"]["supernet_mode"] == "fixed_arch" and config["checkpoint"]["init_from"]

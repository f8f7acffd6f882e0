"""Bad input against a real SLURM: sbatch's own error is shown, refused images submit nothing."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.slurm


def test_unknown_partition_shows_the_sbatch_error(slurm_cluster, cli, launch_config, tmp_path):
    config = launch_config(slurm={"partition": "no_such_partition", "gpus_per_node": 0, "cpus_per_task": 1,
                                  "mem_gb": 0.25, "setup": []})
    result = cli("submit", "--config", config)
    assert result.exit_code == 1, result.output
    assert "sbatch refused the submission" in result.output
    assert "invalid partition" in result.output.lower()
    assert "Traceback" not in result.output
    # Nothing of the refused submission is left: no records, no pickles or script, no run directory.
    assert not (tmp_path / "out" / "golden").exists()


def test_version_mismatch_in_the_image_submits_nothing(slurm_cluster, cli, launch_config, fake_apptainer, tmp_path):
    image = tmp_path / "efnas.sif"
    image.write_bytes(b"image")
    fake_apptainer(submitit="1.4.0")
    config = launch_config(slurm={"partition": None, "gpus_per_node": 0, "cpus_per_task": 1, "mem_gb": 0.25,
                                  "setup": []})
    result = cli("submit", "--config", config, "--container", image)
    assert result.exit_code == 1, result.output
    assert "submitit 1.4.0 in the image" in result.output
    assert not (tmp_path / "out" / "golden" / "slurm_submissions.jsonl").exists()

"""``efnas demo``: synth -> data-check -> pack -> warm-up -> supernet from shards -> report -> export, tiny config."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import pytest
import yaml

pytestmark = pytest.mark.slow


def test_demo_runs_the_whole_chain_and_points_at_the_artifacts(cli, tiny_run, tmp_path):
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(tiny_run))
    out = tmp_path / "demo"
    result = cli("demo", "--out", out, "--config", config, "--train_samples", 12, "--val_samples", 4,
                 "--warmup_epochs", 1, "--num_epochs", 1, "--batch_size", 2)
    assert result.exit_code == 0, result.output[-3000:]
    for command in ("$ efnas synth --preset learnable", "$ efnas data-check", "$ efnas pack", "$ efnas train"):
        assert command in result.output
    assert result.output.count("$ efnas train") == 2  # the warm-up (baseline alone), then the supernet inheriting it
    warmup = json.loads((out / "runs" / "warmup" / "train_manifest.json").read_text())["resolved_config"]
    assert warmup["train"]["supernet_mode"] == "fixed_arch"
    assert "inherit weights and BN statistics from" in result.output
    assert "data-check: ok" in result.output
    assert f"train_samples=12 (shards: {out / 'shards'})" in result.output
    assert "val_samples=4" in result.output
    run_dir = out / "runs" / "demo"
    for name in ("supernet_best.ckpt", "supernet_last.ckpt", "train_manifest.json", "eval_epe_history.csv",
                 "fairness_counts.json", "eval_pool_12.json"):
        assert (run_dir / name).exists(), name
        assert str(run_dir / name) in result.output
    assert "mean_epe" in result.output and "demo done" in result.output
    assert "zero-flow" in result.output and "(best pool subnet)" in result.output and "ms per pair" in result.output
    assert (out / "export" / "model.tflite").is_file() or any((out / "export").glob("*.tflite"))
    manifest = json.loads((run_dir / "train_manifest.json").read_text())
    assert manifest["data"]["source"] == "shards" and len(manifest["data"]["shards_manifest_sha256"]) == 64
    assert manifest["lr_schedule"]["steps_per_epoch"] == 3  # the config's train.steps_per_epoch
    assert manifest["resolved_config"]["checkpoint"]["resume_experiment_name"] == "warmup"
    assert "the zero-flow EPE" in result.output and "stages: synth" in result.output and "disk" in result.output

    # The report step, and `efnas eval` on the demo's run (shards source): the pool EPEs logged for the
    # checkpoint's epoch come back from a fresh evaluation.
    assert "$ efnas report" in result.output
    assert (run_dir / "report" / "report.html").is_file() and (run_dir / "report" / "epe_per_subnet.png").is_file()
    assert f"efnas eval --run {run_dir} --arch pool" in result.output
    done = subprocess.run([sys.executable, "-c", "from edgeflownas.cli import main; main()", "eval", "--run",
                           str(run_dir), "--arch", "pool", "--ckpt", "last", "--json"],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = list(csv.DictReader(open(run_dir / "eval_epe_history.csv")))
    doc = json.loads(done.stdout)
    assert len(doc["subnets"]) == 12
    for subnet in doc["subnets"]:
        assert subnet["epe"] == pytest.approx(float(rows[-1][f"epe_{subnet['name']}"]), rel=1e-6, abs=1e-7)


def test_demo_refuses_a_non_empty_output_directory(cli, tmp_path):
    (tmp_path / "demo").mkdir()
    (tmp_path / "demo" / "keep.txt").write_text("x")
    result = cli("demo", "--out", tmp_path / "demo")
    assert result.exit_code == 2 and "is not empty" in result.output

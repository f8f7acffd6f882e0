"""On a real (tiny) trained run: `efnas eval` reproduces the logged EPE; `efnas report` shows the run's data."""

from __future__ import annotations

import json
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest

from edgeflownas.config import resolve_mapping
from edgeflownas.data.loader import open_source
from edgeflownas.nas.arch_codec import EDGEFLOWNET_BASELINE, arch_name
from edgeflownas.report.build import build_report
from edgeflownas.report.eval_run import evaluate_run
from edgeflownas.report.run_data import load_run
from edgeflownas.train import checkpoint, run_dir as rd

pytestmark = pytest.mark.slow


def logged_row(run_dir, which):
    """The history CSV row of the epoch a checkpoint was saved after (CSV read by the report's reader)."""
    epoch = checkpoint.read_state(run_dir / f"supernet_{which}.ckpt")["epoch"]
    return next(row for row in load_run(run_dir).history if row["epoch"] == epoch)


def test_eval_of_the_pool_reproduces_the_logged_epe(trained_run):
    lines = []
    report = evaluate_run(trained_run, ["pool"], "last", log=lines.append)
    row = logged_row(trained_run, "last")
    assert report.epoch == row["epoch"] and len(report.rows) == 12
    assert report.bn_recal_batches == 8
    for subnet in report.rows:
        assert subnet["epe"] == pytest.approx(row[f"epe_{subnet['name']}"], rel=1e-6, abs=1e-7)
        assert subnet["logged_epe"] == row[f"epe_{subnet['name']}"]
        assert 0.0 <= subnet["outlier_5px"] <= subnet["outlier_3px"] <= subnet["outlier_1px"] <= 1.0
    assert np.mean([s["epe"] for s in report.rows]) == pytest.approx(row[rd.mean_column(12)], rel=1e-6)
    assert sum(line.startswith("eval subnet=") and "bn_recal_batches=8" in line for line in lines) == 12


def test_eval_finds_moved_data_through_overrides_and_refuses_other_data(trained_run, tiny_fc2, tmp_path):
    import shutil

    from edgeflownas.errors import DataError

    moved = tmp_path / "moved"
    shutil.copytree(tiny_fc2, moved)
    here = {"data.train_dir": str(moved / "train"), "data.val_dir": str(moved / "val")}
    report = evaluate_run(trained_run, ["baseline"], "last", data_overrides=here)
    assert report.rows[0]["epe"] == evaluate_run(trained_run, ["baseline"], "last").rows[0]["epe"]
    for path in (moved / "val").glob("0000000-*"):  # the val split is now another set of samples
        path.unlink()
    with pytest.raises(DataError, match="the val split found now .* differs from the one recorded"):
        evaluate_run(trained_run, ["baseline"], "last", data_overrides=here)


def test_eval_command_json_row_with_cost(trained_run):
    # A fresh process, as a user runs it (this one has TensorFlow state from the training fixture).
    command = [sys.executable, "-c", "from edgeflownas.cli import main; main()", "eval", "--run", str(trained_run),
               "--arch", "baseline", "--ckpt", "last", "--json"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    doc = json.loads(done.stdout)
    assert doc["checkpoint"] == "last" and doc["epoch"] == 3 and doc["bn_recal_batches"] == 8
    (row,) = doc["subnets"]
    manifest = json.loads((trained_run / rd.MANIFEST).read_text())
    assert row["name"] == arch_name(EDGEFLOWNET_BASELINE) and row["arch_code"] == list(EDGEFLOWNET_BASELINE)
    assert row["params"] > 0 and row["macs"] > 0
    assert row["pixels"] == manifest["eval"]["val_samples_used"] * 32 * 48
    assert "eval subnet=a000021222 bn_recal_batches=8" in done.stderr


def test_eval_cli_refuses_bad_input(trained_run, cli, tmp_path):
    assert cli("eval", "--run", trained_run, "--arch", "0,1,2").exit_code == 2
    missing = cli("eval", "--run", tmp_path / "nothing", "--arch", "baseline")
    assert missing.exit_code == 2 and "no such run" in missing.output and "nothing" in missing.output


def test_report_flow_pictures_come_from_the_run(trained_run, tmp_path):
    result = build_report(trained_run, tmp_path / "report", checkpoint="best", flow_samples=2)
    flow = result.flow
    run = load_run(trained_run)
    row = logged_row(trained_run, "best")
    best = min(run.pool_names, key=lambda name: row[f"epe_{name}"])
    assert [m.name for m in flow.metrics] == [arch_name(EDGEFLOWNET_BASELINE), best]
    assert flow.metrics[1].epe == pytest.approx(row[f"epe_{best}"], rel=1e-6)
    manifest = json.loads((trained_run / rd.MANIFEST).read_text())
    val = open_source(resolve_mapping(manifest["resolved_config"]).config.data, "val")
    for sample in flow.samples:
        index = val.sample_ids.index(sample.sample_id)
        img0, _, gt = val.get(index)
        assert np.array_equal(sample.img0, img0) and np.array_equal(sample.flow_gt, gt)
        for predicted in sample.predictions.values():
            assert predicted.shape == gt.shape and predicted.std() > 0
    page = result.html.read_text()
    assert set(result.figures) >= {"flow", "wheel"} and page.count("data:image/png;base64,") == len(result.figures)
    assert f"{flow.metrics[1].epe:.4f}" in page


def test_report_cli_on_the_run(trained_run, cli, tmp_path):
    result = cli("report", trained_run, "--out", tmp_path / "out", "--flow-samples", "0", "--no-cost")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "out" / "report.html").is_file()
    assert sorted(p.name for p in (tmp_path / "out").glob("*.png")) == [
        "early_stop.png", "epe_per_subnet.png", "ranking_stability.png",
        "training_curves.png"]  # strict fairness: equal counts are one sentence, not a figure


def test_costs_come_from_the_runs_table_counted_once(trained_run, tmp_path, monkeypatch):
    import shutil

    from edgeflownas.model.cost import CostTable
    from edgeflownas.train.trained_run import COST_TABLE_FILE, TrainedRun

    copy = tmp_path / "run"
    shutil.copytree(trained_run, copy)
    (copy / COST_TABLE_FILE).unlink(missing_ok=True)  # other tests' eval may have counted it already
    calls = []

    def fake_build(height, width, model_cfg):
        calls.append((height, width, model_cfg.init_neurons))
        return CostTable(height, width, (1, 10), tuple(((o, 100 * o),) * 3 for o in range(9)))

    monkeypatch.setattr(CostTable, "build", staticmethod(fake_build))
    cost = TrainedRun.open(copy, "last").cost
    assert cost(EDGEFLOWNET_BASELINE) == {"params": 1 + sum(range(9)), "macs": 10 + 100 * sum(range(9))}
    assert cost(list(EDGEFLOWNET_BASELINE)) == cost(EDGEFLOWNET_BASELINE)
    assert calls == [(32, 48, 8)] and (copy / COST_TABLE_FILE).is_file()
    assert TrainedRun.open(copy, "best").cost(EDGEFLOWNET_BASELINE) == cost(EDGEFLOWNET_BASELINE)
    assert len(calls) == 1, "the table kept in the run directory is read back, not counted again"

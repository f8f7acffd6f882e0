"""`efnas eval` gives the EPE at native resolution beside the training-resolution EPE, or says why it cannot."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from edgeflownas.data.io import read_flo
from edgeflownas.data.pack import pack
from edgeflownas.nas.arch_codec import EDGEFLOWNET_BASELINE
from edgeflownas.report.eval_run import evaluate_run, format_report, write_report
from edgeflownas.train.trained_run import TrainedRun
from edgeflownas.train.native_epe import upsample_flow

pytestmark = pytest.mark.slow


def test_native_epe_is_the_upsampled_prediction_against_the_full_resolution_flo(search_run, tiny_fc2):
    with TrainedRun.open(search_run, "best").evaluator(native_epe=True) as evaluator:
        metrics = evaluator.evaluate(EDGEFLOWNET_BASELINE)
        used = evaluator.plan.val_samples_used
        batch, predicted = evaluator.predict(EDGEFLOWNET_BASELINE, list(range(used)))
        status = evaluator.native_status
    assert predicted.shape[1:3] == (32, 48) and metrics.native_resolution == "48x64"
    errors = [np.hypot(*(upsample_flow(flow, 48, 64) - read_flo(tiny_fc2 / "val" / f"{sample_id}-flow_01.flo"))
                        .transpose(2, 0, 1)) for sample_id, flow in zip(batch.ids, predicted)]
    assert metrics.epe_native == pytest.approx(float(np.mean(errors)), rel=1e-5)
    assert metrics.epe_native != pytest.approx(metrics.epe, rel=1e-3), "a different number from the training one"
    assert status["available"] and status["resolution"] == "48x64"
    assert "EPE at native resolution (48x64 px, prediction upsampled bilinearly" in status["label"]


def test_without_native_epe_nothing_is_read_or_reported(search_run):
    with TrainedRun.open(search_run, "best").evaluator() as evaluator:
        metrics = evaluator.evaluate(EDGEFLOWNET_BASELINE)
        assert evaluator.native is None and evaluator.native_status["available"] is False
    assert metrics.epe_native is None and metrics.native_resolution is None
    report = evaluate_run(search_run, ["baseline"], native_epe=False)
    assert "epe_native" not in report.to_dict() and "EPE native" not in format_report(report)


def test_eval_table_csv_and_json_carry_the_labelled_native_column(cli, search_run, tmp_path):
    result = cli("eval", "--run", search_run, "--arch", "baseline;a000000000", "--out", tmp_path / "r.csv")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert "EPE native" in lines[1]
    assert any(line.startswith("EPE: at the training resolution (32x48 px), the selection metric") for line in lines)
    assert any(line.startswith("EPE native: EPE at native resolution (48x64 px") for line in lines)
    rows = list(csv.DictReader((tmp_path / "r.csv").open()))
    assert [r["native_resolution"] for r in rows] == ["48x64", "48x64"]
    assert all(float(r["epe_native"]) > 0 for r in rows)
    assert rows[0]["epe_native_note"].startswith("EPE at native resolution (48x64 px")
    epes = [float(r["epe"]) for r in rows]
    assert epes == sorted(epes), "the training-resolution EPE stays the sort key"
    doc = json.loads(cli("eval", "--run", search_run, "--arch", "baseline", "--json").stdout)
    assert doc["epe_native"]["available"] and doc["subnets"][0]["epe_native"] == pytest.approx(
        float(next(r for r in rows if r["name"] == doc["subnets"][0]["name"])["epe_native"]))
    assert doc["epe"].startswith("EPE at the training resolution (32x48 px)")
    off = cli("eval", "--run", search_run, "--arch", "baseline", "--no-native-epe")
    assert off.exit_code == 0 and "EPE native" not in off.stdout


def test_shards_at_the_training_size_report_native_epe_unavailable_with_the_reason(search_run, tiny_fc2,
                                                                                   tmp_path):
    pack(tiny_fc2, tmp_path / "packed", height=32, width=48, shard_size=8, workers=1)
    shards = {"data.source": "shards", "data.shards_dir": str(tmp_path / "packed")}
    report = evaluate_run(search_run, ["baseline"], data_overrides=shards)
    assert report.rows[0]["epe_native"] is None and report.rows[0]["epe"] > 0
    assert report.native_epe["available"] is False
    assert "packed at the training size" in report.native_epe["reason"]
    table = format_report(report)
    assert " n/a " in table.splitlines()[2]
    assert "EPE native: EPE at native resolution not available: " in table
    row = next(csv.DictReader(write_report(report, tmp_path / "r.csv").open()))
    assert row["epe_native"] == "" and "packed at the training size" in row["epe_native_note"]


def test_native_shards_give_the_same_native_epe_as_the_folders(search_run, tiny_fc2, tmp_path):
    pack(tiny_fc2, tmp_path / "native", resolution="native", shard_size=8, workers=1)
    shards = {"data.source": "shards", "data.shards_dir": str(tmp_path / "native")}
    from_shards = evaluate_run(search_run, ["baseline"], data_overrides=shards).rows[0]
    from_folders = evaluate_run(search_run, ["baseline"]).rows[0]
    assert from_shards["native_resolution"] == "48x64"
    assert from_shards["epe_native"] == pytest.approx(from_folders["epe_native"], rel=1e-6)
    assert from_shards["epe"] == pytest.approx(from_folders["epe"], rel=1e-6)


def test_report_flow_section_shows_both_epes_labelled(search_run, tiny_fc2, tmp_path):
    from edgeflownas.report.build import build_report

    result = build_report(search_run, tmp_path / "folders", flow_samples=1)
    assert all(m.epe_native is not None and m.native_resolution == "48x64" for m in result.flow.metrics)
    page = result.html.read_text()
    assert "EPE at native resolution (px)" in page and f"{result.flow.metrics[0].epe_native:.4f}" in page
    assert "EPE (px): at the training resolution (32x48 px), the selection metric" in page
    assert "EPE at native resolution (48x64 px, prediction upsampled bilinearly" in page
    pack(tiny_fc2, tmp_path / "packed", height=32, width=48, shard_size=8, workers=1)
    shards = {"data.source": "shards", "data.shards_dir": str(tmp_path / "packed")}
    packed = build_report(search_run, tmp_path / "shards", flow_samples=1, data_overrides=shards)
    assert all(m.epe_native is None for m in packed.flow.metrics)
    page = packed.html.read_text()
    assert "EPE at native resolution not available: " in page and "packed at the training size" in page
    assert "<td>n/a</td>" in page or ">n/a<" in page

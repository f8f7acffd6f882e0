"""The report's numbers come from the run's artifacts unchanged (hand-written run directory, no TensorFlow)."""

from __future__ import annotations

import base64
import csv
import json
import re

import numpy as np
import pytest

from edgeflownas.errors import CheckpointError, NoSuchRunError
from edgeflownas.report import plots, tables
from edgeflownas.report.build import build_report, best_pool_subnet
from edgeflownas.report.ranking import consecutive_taus, kendall_tau
from edgeflownas.report.run_data import load_run
from edgeflownas.train import run_dir as rd


def csv_rows(run_dir):
    """The history CSV read independently of the report code."""
    with open(run_dir / rd.HISTORY, newline="") as handle:
        return list(csv.DictReader(handle))


def fake_cost(code):
    return {"params": 1000 + sum(code), "macs": 10**9 + 10**6 * sum(code)}


def test_ranking_table_copies_the_last_evaluated_csv_row(fake_run):
    run = load_run(fake_run)
    last = csv_rows(fake_run)[-1]
    ranking = tables.ranking_table(run, fake_cost, window=3)
    assert [row["rank"] for row in ranking] == list(range(1, 13))
    assert sorted(row["subnet"] for row in ranking) == sorted(run.pool_names)
    for row in ranking:
        assert row["epe"] == float(last[f"epe_{row['subnet']}"])
        assert row["epoch"] == int(last["epoch"])
        recent = [float(r[f"epe_{row['subnet']}"]) for r in csv_rows(fake_run)[-3:]]
        assert row["epe_recent_mean"] == pytest.approx(np.mean(recent))
        assert row["params"] == fake_cost(tuple(int(c) for c in row["arch_code"].split(",")))["params"]
    assert [row["epe"] for row in ranking] == sorted(row["epe"] for row in ranking)


def test_taus_are_kendall_of_consecutive_csv_rows(fake_run):
    run = load_run(fake_run)
    rows = csv_rows(fake_run)
    columns = [f"epe_{name}" for name in run.pool_names]
    taus = consecutive_taus(run.history, run.epe_columns)
    assert len(taus) == len(rows) - 1
    for step, a, b in zip(taus, rows, rows[1:]):
        assert (step.epoch_from, step.epoch_to) == (int(a["epoch"]), int(b["epoch"]))
        assert step.tau == kendall_tau([float(a[c]) for c in columns], [float(b[c]) for c in columns])


def test_figures_plot_the_csv_values(fake_run):
    run = load_run(fake_run)
    rows = csv_rows(fake_run)
    figure = plots.epe_figure(run)
    lines = {line.get_label(): line for line in figure.axes[0].get_lines()}
    for name in run.pool_names:
        assert list(lines[name].get_ydata()) == [float(r[f"epe_{name}"]) for r in rows]
    assert list(lines[run.mean_column].get_ydata()) == [float(r[run.mean_column]) for r in rows]
    band = figure.axes[0].collections[0].get_paths()[0].vertices[:, 1]
    mean, std = (np.array([float(r[c]) for r in rows]) for c in (run.mean_column, run.std_column))
    assert np.allclose(band.min(), (mean - std).min()) and np.allclose(band.max(), (mean + std).max())
    loss_axis = plots.training_figure(run).axes[0]
    assert list(loss_axis.get_lines()[0].get_ydata()) == [float(r["train_loss_epoch_avg"]) for r in rows]
    fairness_axis = plots.fairness_figure(run).axes[0]
    heights = [patch.get_height() for patch in fairness_axis.patches]
    counts = run.fairness["option_counts"]
    assert sorted(heights) == sorted(float(c) for block in counts.values() for c in block)


def test_epochs_without_evaluation_are_left_out(make_fake_run):
    run = load_run(make_fake_run("every2", epochs=6, eval_every=2))
    assert [row["epoch"] for row in run.evaluated()] == [2, 4, 6]
    assert run.history[0][run.mean_column] is None
    taus = consecutive_taus(run.history, run.epe_columns)
    assert [(t.epoch_from, t.epoch_to) for t in taus] == [(2, 4), (4, 6)]
    assert tables.ranking_table(run)[0]["epoch"] == 6
    code, epe, epoch = best_pool_subnet(run, 5)
    assert epoch == 4 and epe == min(run.history[3][c] for c in run.epe_columns)


def test_html_is_self_contained_and_shows_the_csv_numbers(fake_run, tmp_path):
    result = build_report(fake_run, tmp_path / "out", checkpoint="last", flow_samples=0, cost=fake_cost)
    page = result.html.read_text()
    # Equal fairness counts are one line, not a figure of equal bars.
    assert set(result.figures) == {"epe", "training", "early_stop", "ranking", "cost"}
    counts = {c for block in load_run(fake_run).fairness["option_counts"].values() for c in block}
    assert len(counts) == 1 and f"Every option of every block was trained {counts.pop():,} times" in page
    sources = re.findall(r'src="([^"]*)"', page)
    assert len(sources) == 5 and all(s.startswith("data:image/png;base64,") for s in sources)
    for source in sources:
        assert base64.b64decode(source.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    assert not re.search(r'(href|src)="(?!data:|#)', page)
    last = csv_rows(fake_run)[-1]
    run = load_run(fake_run)
    for name in run.pool_names:
        assert f"{float(last[f'epe_{name}']):.4f}" in page
    assert f"{float(last[run.mean_column]):.4f} (epoch {last['epoch']})" in page
    for step in consecutive_taus(run.history, run.epe_columns)[-10:]:
        assert f"{step.tau:.3f}" in page
    state = run.last_state["early_stop"]
    assert f"{state['bad_epochs']} / 3" in page


def test_missing_artifacts_are_named(fake_run):
    (fake_run / rd.HISTORY).unlink()
    with pytest.raises(CheckpointError, match="eval_epe_history.csv is missing"):
        load_run(fake_run)
    with pytest.raises(NoSuchRunError, match="no such run: .* does not exist"):
        load_run(fake_run / "nope")


def test_malformed_csv_cell_is_named(fake_run):
    path = fake_run / rd.HISTORY
    lines = path.read_text().splitlines()
    lines[2] = lines[2].replace(",0,", ",zero,", 1)
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(CheckpointError, match=r"line 3, column .*'zero' is not a number"):
        load_run(fake_run)


def test_the_epe_axis_fits_the_subnets_and_names_the_zero_flow_epe_above_them(fake_run):
    run = load_run(fake_run)
    axis = plots.epe_figure(run).axes[0]
    values = [v for c in run.epe_columns for v in run.column(c) if v is not None]
    low, high = axis.get_ylim()
    assert low <= min(values) and high >= max(values)
    assert (high - low) < 1.3 * (max(values) - min(values)) + 1e-3  # the subnets fill the axis
    zero = [v for v in run.column("zero_flow_epe") if v is not None] if "zero_flow_epe" in run.columns else []
    if zero and min(zero) > high:
        assert f"zero-flow EPE {zero[-1]:.3f} px (above the axis)" in axis.get_title()
    styles = [(line.get_color(), line.get_marker(), line.get_linestyle()) for line in axis.get_lines()
              if line.get_label() in run.pool_names]
    assert len(set(styles)) == len(run.pool_names)  # no two subnets drawn alike


def test_a_constant_lr_has_no_panel_and_a_far_clip_line_is_named_not_drawn(fake_run):
    run = load_run(fake_run)
    lr = [v for v in run.column("lr") if v is not None]
    figure = plots.training_figure(run)
    assert len(figure.axes) == (2 if len(set(lr)) == 1 else 3)
    norm_axis = figure.axes[1]
    clip = run.manifest.get("grad_clip", {}).get("max_norm")
    norms = [v for c in ("train_grad_norm_before_clip_epoch_avg", "train_grad_norm_after_clip_epoch_avg")
             for v in run.column(c) if v is not None]
    drawn = [line for line in norm_axis.get_lines() if line.get_label().startswith("clip norm")]
    if clip is not None and clip > 3 * max(norms):
        assert not drawn and f"clip norm {clip:g}: never reached" in norm_axis.get_title()
    elif clip is not None:
        assert drawn


def test_constant_lr_run(make_fake_run):
    """A run with a constant lr: two panels, and the loss panel's title gives the lr."""
    import csv as csv_module

    run_dir = make_fake_run("flat")
    path = run_dir / rd.HISTORY
    rows = list(csv_module.DictReader(path.open()))
    for row in rows:
        row["lr"] = "0.001"
    with path.open("w", newline="") as handle:
        writer = csv_module.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    figure = plots.training_figure(load_run(run_dir))
    assert len(figure.axes) == 2 and "lr constant 0.001" in figure.axes[0].get_title()


def test_step_lines_of_train_log_are_drawn_as_the_running_loss(fake_run):
    manifest = json.loads((fake_run / rd.MANIFEST).read_text())
    per_epoch = 4
    manifest["lr_schedule"] = {"steps_per_epoch": per_epoch}
    (fake_run / rd.MANIFEST).write_text(json.dumps(manifest))
    run = load_run(fake_run)
    (fake_run / "train.log").write_text(
        "2026-01-01 00:00:00 INFO epoch 1 step 2/4 global_step=2 loss_avg=3.50000 lr=1.000e-03 ETA 0:00:01\n"
        "2026-01-01 00:00:01 INFO epoch 1 step 4/4 global_step=4 loss_avg=3.00000 lr=1.000e-03 ETA 0:00:01\n"
        "2026-01-01 00:00:02 INFO epoch 1 step 4/4 global_step=4 loss_avg=2.90000 lr=1.000e-03 ETA 0:00:01\n")
    line = next(l for l in plots.training_figure(run).axes[0].get_lines()
                if l.get_label().startswith("running average"))
    assert list(line.get_xdata()) == [2 / per_epoch, 4 / per_epoch]
    assert list(line.get_ydata()) == [3.5, 2.9]  # a repeated step (a resume): the last line wins


def test_the_report_command_prints_the_page_path_once(cli, fake_run):
    result = cli("report", "--run", fake_run, "--flow_samples", 0, "--no_cost")
    assert result.exit_code == 0, result.output
    page = str(fake_run / "report" / "report.html")
    assert result.output.count(page) == 1 and result.stdout.strip().endswith(page)


def test_the_study_figure_draws_the_zero_flow_line_only_near_the_retrains():
    """A zero-flow line far above every retrain would squash the subnets into one row: it is drawn when a retrain
    reaches within the retrains' own span of it (a stuck one), else the title names it."""
    from edgeflownas.report.study import study_figure, zero_line_fits

    assert not zero_line_fits([0.90, 0.93], [0.95, 1.00], 2.03)
    assert zero_line_fits([0.90, 0.93], [0.95, 2.04], 2.03)  # a stuck retrain
    assert zero_line_fits([0.90], [0.95], 0.99)
    subnets = [{"name": f"s{i}", "depth": 4 + i, "supernet_epe": {"42": 1.3 + 0.01 * i},
                "standalone": {"1": {"epe": 0.9 + 0.01 * i}, "2": {"epe": 0.92 + 0.01 * i}}} for i in range(3)]
    doc = {"subnets": subnets, "reference": {s["name"]: s["standalone"]["1"]["epe"] for s in subnets}, "k": 3,
           "zero_flow_epe": 2.031, "verdict": "cannot tell"}
    left = study_figure(doc).axes[0]
    assert "zero-flow EPE 2.031 px (above the axis)" in left.get_title()
    assert not [text for text in left.get_legend().get_texts() if "zero-flow" in text.get_text()]
    assert left.get_ylim()[1] < 1.0

"""The report's EPE-vs-MACs figure (pool, baseline, search fronts) and its readable run summary (no TensorFlow)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from edgeflownas.nas.arch_codec import EDGEFLOWNET_BASELINE, arch_name
from edgeflownas.report import html, plots
from edgeflownas.report.build import CheckpointMark, build_report, cost_view
from edgeflownas.report.run_data import load_run
from edgeflownas.report.tables import ranking_table


def fake_cost(code):
    return {"params": 1000 + sum(code), "macs": 10**9 + 10**7 * sum(code)}


def scatter_points(axis, label):
    collection = next(c for c in axis.collections if c.get_label() == label)
    return [tuple(p) for p in np.asarray(collection.get_offsets())]


def test_scatter_shows_every_pool_subnet_named_the_baseline_and_the_fronts():
    pool = [{"name": f"a00000000{i}", "epe": 3.0 - 0.1 * i, "macs": (1 + i) * 1e9} for i in range(5)]
    front = [{"name": "a111111111", "epe": 2.0, "macs": 1.5e9}, {"name": "a222222222", "epe": 1.5, "macs": 4e9}]
    baseline = {"name": arch_name(EDGEFLOWNET_BASELINE), "epe": 2.5, "macs": 3.4e9}
    figure = plots.epe_macs_figure(pool, baseline, {"search front s1": front}, "pool (epoch 3)", "baseline (x)")
    axis = figure.axes[0]
    assert scatter_points(axis, "pool (epoch 3)") == [(p["macs"] / 1e9, p["epe"]) for p in pool]
    assert scatter_points(axis, "search front s1") == [(1.5, 2.0), (4.0, 1.5)]
    assert scatter_points(axis, "baseline (x)") == [(3.4, 2.5)]
    names = [text.get_text() for text in axis.texts]
    assert all(p["name"] in names for p in pool + front)
    assert f"baseline {arch_name(EDGEFLOWNET_BASELINE)}" in names
    assert "MACs" in axis.get_xlabel() and "EPE" in axis.get_ylabel()


def test_every_point_is_of_the_reports_checkpoint_and_other_searches_are_left_out(fake_run):
    run = load_run(fake_run)
    mark = CheckpointMark.read(fake_run, "last")
    front = [dict(name="a111111111", epe=1.0, macs=2e9, params=5)]
    baseline = [{"name": arch_name(EDGEFLOWNET_BASELINE), "epe": 2.75, "macs": 3e9}]
    same = {"checkpoint": "last", "epoch": mark.epoch, "checkpoint_sha256": mark.weights_sha256,
            "front_macs": front, "marks": {"baseline": baseline}}
    other = dict(same, checkpoint="best", epoch=3, checkpoint_sha256="f" * 64)
    view = cost_view(run, fake_cost, None, [(Path("search"), same), (Path("search_old"), other)], mark)
    row = next(r for r in run.history if r["epoch"] == mark.epoch)
    assert [(p["name"], p["epe"]) for p in view.pool] == [(name, row[f"epe_{name}"]) for name in run.pool_names]
    assert [p["macs"] for p in view.pool] == [fake_cost(code)["macs"] for code in run.pool]
    assert view.fronts == {"search front search": [{"name": "a111111111", "epe": 1.0, "macs": 2e9}]}
    assert view.left_out == ("search_old (supernet_best, epoch 3)",)
    if EDGEFLOWNET_BASELINE in run.pool:
        assert "in the pool" in view.baseline_label
    else:
        assert view.baseline == baseline[0] and "scored by search" in view.baseline_label
        assert cost_view(run, fake_cost, None, [(Path("search_old"), other)], mark).baseline is None
    inside = CheckpointMark(mark.which, mark.epoch, mark.weights_sha256, logged_is_current=False)
    assert cost_view(run, fake_cost, None, [], inside) is None  # saved inside an epoch: no logged EPE of it


def test_report_page_has_the_scatter_and_no_raw_json_in_the_summary(fake_run, tmp_path):
    result = build_report(fake_run, tmp_path / "out", checkpoint="last", flow_samples=0, cost=fake_cost)
    assert result.figures["cost"].name == "epe_vs_macs.png" and result.figures["cost"].is_file()
    page = result.html.read_text()
    assert '<section id="cost"><h2>EPE vs MACs</h2>' in page and 'alt="EPE vs MACs"' in page
    summary = re.search(r'<section id="summary">(.*?)</section>', page).group(1)
    assert "{" not in summary and "[" not in summary, summary
    assert '<table class="inner">' in summary
    assert '<td class="text">pool_size</td><td class="text">12</td>' in summary
    assert "2, 32, 48, 3" in summary  # input_shape
    without_cost = build_report(fake_run, tmp_path / "plain", flow_samples=0)
    assert "cost" not in without_cost.figures and 'id="cost"' not in without_cost.html.read_text()


def test_nested_values_are_tables():
    assert html.value_html({"a": 1, "b": [1, 2]}) == ('<table class="inner"><tr><td class="text">a</td><td '
                                                      'class="text">1</td></tr><tr><td class="text">b</td><td '
                                                      'class="text">1, 2</td></tr></table>')
    listed = html.value_html([{"mode": "fresh", "step": 0}, {"mode": "resume", "step": 4}])
    assert "<th class=\"text\">mode</th>" in listed and listed.count("<tr>") == 3
    assert html.value_html(None) == "-" and html.value_html("<b>") == "&lt;b&gt;"


def test_names_never_overlap_each_other_or_a_point_and_the_legend_is_outside():
    # A crowded pool: pairs of points close in both EPE and MACs.
    rng = np.random.default_rng(3)
    pool = [{"name": f"a{i:09d}", "epe": 1.2 + 0.01 * (i // 2) + 0.001 * rng.random(),
             "macs": (30 + 2 * (i // 2) + 0.3 * (i % 2)) * 1e6} for i in range(12)]
    baseline = {"name": arch_name(EDGEFLOWNET_BASELINE), "epe": 1.23, "macs": 39e6}
    figure = plots.epe_macs_figure(pool, baseline, {}, "pool", "baseline")
    figure.draw_without_rendering()
    axis = figure.axes[0]
    renderer = figure.canvas.get_renderer()
    boxes = [text.get_window_extent(renderer) for text in axis.texts]
    assert len(boxes) == 13
    for i, a in enumerate(boxes):
        for b in boxes[i + 1:]:
            assert not a.overlaps(b)
    points = [axis.transData.transform((p["macs"] / 1e9, p["epe"])) for p in pool + [baseline]]
    for text, box in zip(axis.texts, boxes):
        own = next(p for p in pool + [dict(baseline, name=f"baseline {baseline['name']}")]
                   if p["name"] == text.get_text())
        mine = axis.transData.transform((own["macs"] / 1e9, own["epe"]))
        assert not any(box.contains(*point) for point in points if not np.allclose(point, mine))
    legend = axis.get_legend().get_window_extent(renderer)
    assert legend.x0 >= axis.get_window_extent(renderer).x1  # beside the axes, over no point


def test_flow_pictures_show_both_images_and_a_colour_bar_in_px():
    from edgeflownas.flow_viz import endpoint_error

    rng = np.random.default_rng(0)
    img0, img1 = (rng.integers(0, 255, (16, 24, 3), dtype=np.uint8) for _ in range(2))
    gt = rng.normal(0, 2, (16, 24, 2)).astype(np.float32)
    predictions = {"baseline": gt + 0.5, "best": gt - 1.0}
    figure = plots.flow_samples_figure([plots.FlowSample("0000007", img0, img1, gt, predictions)])
    images = [axis.get_images()[0] for axis in figure.axes if axis.get_images()]
    titles = [axis.get_title() for axis in figure.axes if axis.get_images()]
    assert titles[0] == "0000007 img0" and titles[1] == "img1"
    assert np.array_equal(images[0].get_array(), img0) and np.array_equal(images[1].get_array(), img1)
    error = np.asarray(images[-1].get_array())
    assert np.allclose(error, endpoint_error(predictions["best"], gt))  # the map holds the error in px
    bars = [axis for axis in figure.axes if axis.get_label() == "<colorbar>"]
    assert len(bars) == 1 and "px" in bars[0].get_ylabel()
    top = images[-1].get_clim()[1]
    assert images[-2].get_clim() == (0.0, top)  # one error scale for every map

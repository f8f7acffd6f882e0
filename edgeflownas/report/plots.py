"""The report's PNG figures, drawn headless with matplotlib's Agg canvas (no pyplot, no display).

Each ``*_figure`` function takes plain data (a ``RunData`` or lists) and
returns a matplotlib Figure (so tests can read back the plotted numbers);
``save`` writes it as PNG.  matplotlib is imported inside the functions so
importing this module stays cheap.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Dict, List, Mapping, Optional, Sequence

import numpy as np

from edgeflownas.nas.arch_codec import BLOCK_NAMES
from edgeflownas.flow_viz import endpoint_error, error_to_rgb, flow_magnitude_max, flow_to_rgb, wheel_legend
from edgeflownas.report.ranking import TauStep, ranks
from edgeflownas.report.run_data import RunData

if TYPE_CHECKING:
    from matplotlib.figure import Figure

DPI = 110


@dataclass(frozen=True)
class FlowSample:
    """One validation sample with its ground truth and the predictions of named subnets."""

    sample_id: str
    img0: np.ndarray
    img1: np.ndarray
    flow_gt: np.ndarray
    predictions: Dict[str, np.ndarray]


def _figure(width: float, height: float) -> "Figure":
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def save(figure: "Figure", path: Path) -> Path:
    """Write a figure as PNG (parent folders created) and return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=DPI)
    return path


def _series(run: RunData, column: str) -> tuple:
    """(epochs, values) of the rows where ``column`` has a value."""
    pairs = [(row["epoch"], row[column]) for row in run.history if row.get(column) is not None]
    return np.array([p[0] for p in pairs], float), np.array([p[1] for p in pairs], float)


def _epoch_axis(axis, epochs: Sequence[float] = ()) -> None:
    from matplotlib.ticker import MaxNLocator

    axis.set_xlabel("epoch")
    axis.xaxis.set_major_locator(MaxNLocator(integer=True))
    axis.grid(True, alpha=0.3)
    if len(epochs) and max(epochs) - min(epochs) < 2:
        # One or two epochs: keep whole-epoch ticks instead of matplotlib's fractional autoscale.
        axis.set_xlim(min(epochs) - 1, max(epochs) + 1)


MARKERS = ("o", "s", "^", "D", "v", "P", "X", "<", ">", "h")


def _subnet_colours(count: int) -> List:
    """One colour per subnet from tab10's ten distinct hues (tab20's light/dark pairs read as one colour);
    past ten, ``_subnet_style`` tells subnets apart by marker and line style too."""
    from matplotlib import colormaps

    cmap = colormaps["tab10"]
    return [cmap(i % 10) for i in range(count)]


def _subnet_style(index: int) -> Dict:
    """Marker and line style of the ``index``-th subnet: with its tab10 colour, unique for up to 100 subnets."""
    return {"marker": MARKERS[index % len(MARKERS)], "linestyle": "-" if (index // 10) % 2 == 0 else "--"}


def epe_figure(run: RunData) -> "Figure":
    """Per-subnet EPE across epochs, the pool mean and a +-1 std band, on a y-axis that fits the subnets.

    The zero-flow EPE is usually far above the subnets: drawing it would squeeze them into a thin band, so
    it is drawn only when it falls inside their range and named in the title otherwise.
    """
    figure = _figure(10.5, 5.2)
    axis = figure.add_subplot()
    epochs, mean = _series(run, run.mean_column)
    _, std = _series(run, run.std_column)
    few = len(epochs) < 30
    for index, (name, column, colour) in enumerate(zip(run.pool_names, run.epe_columns,
                                                       _subnet_colours(len(run.pool)))):
        x, y = _series(run, column)
        style = _subnet_style(index)
        axis.plot(x, y, color=colour, linewidth=1.0, alpha=0.85, markersize=4 if few else 0,
                  marker=style["marker"], linestyle=style["linestyle"], label=name, zorder=2)
    if len(std) != len(mean):  # a fixed-arch run (one subnet) logs no std: no band
        std = np.zeros_like(mean)
    else:
        # The band over the subnets' lines, with edges, so it shows through them.
        axis.fill_between(epochs, mean - std, mean + std, color="black", alpha=0.18, linewidth=0,
                          label="pool mean ± std", zorder=3)
        for edge in (mean - std, mean + std):
            axis.plot(epochs, edge, color="black", linewidth=0.8, linestyle=":", zorder=3)
    axis.plot(epochs, mean, color="black", linewidth=2.4, marker="o" if few else None, label=run.mean_column,
              zorder=4)
    values = [v for column in run.epe_columns for v in _series(run, column)[1]] + list(mean - std) + list(mean + std)
    low, high = (min(values), max(values)) if values else (0.0, 1.0)
    pad = max(high - low, 1e-3) * 0.08
    axis.set_ylim(low - pad, high + pad)
    title = f"Pool EPE per subnet ({len(run.pool)} subnets, validation split)"
    zero_epochs, zero = _series(run, "zero_flow_epe") if "zero_flow_epe" in run.columns else ((), ())
    if len(zero_epochs):
        if zero.min() <= high + pad:
            axis.plot(zero_epochs, zero, color="tab:red", linestyle="--", linewidth=1.4,
                      label="zero-flow EPE (same val batches)")
        else:
            title += f"; zero-flow EPE {zero[-1]:.3f} px (above the axis)"
    axis.set_ylabel("EPE (training-resolution px)")
    axis.set_title(title)
    _epoch_axis(axis, epochs)
    axis.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    return figure


def training_figure(run: RunData) -> "Figure":
    """Train loss (epoch averages and the step lines' running averages), grad norm before/after clipping on a
    log scale, and the learning rate (left out when it is constant: the loss panel's title says its value)."""
    x_lr, lr = _series(run, "lr")
    constant_lr = len(lr) > 0 and float(lr.max()) == float(lr.min())
    figure = _figure(12.0 if not constant_lr else 9.0, 3.8)
    axes = figure.subplots(1, 2 if constant_lr else 3)
    loss_axis, norm_axis = axes[0], axes[1]
    x, y = _series(run, "train_loss_epoch_avg")
    loss_axis.plot(x, y, marker="o", markersize=4, color="tab:blue", label="epoch average", zorder=3)
    steps = run.step_losses()
    if steps:
        loss_axis.plot(list(steps), list(steps.values()), color="tab:blue", alpha=0.45, linewidth=1,
                       label="running average (step log lines)")
        loss_axis.legend(fontsize=8)
    loss_axis.set_title("train loss" + (f" (lr constant {lr[0]:.3g})" if constant_lr else ""), fontsize=10)
    for column, label, colour in (("train_grad_norm_before_clip_epoch_avg", "before clip", "tab:red"),
                                  ("train_grad_norm_after_clip_epoch_avg", "after clip", "tab:green")):
        xs, ys = _series(run, column)
        norm_axis.plot(xs, ys, marker="o", markersize=3, color=colour, label=label)
    norms = [v for line in norm_axis.get_lines() for v in line.get_ydata() if v > 0]
    clip = run.manifest.get("grad_clip", {}).get("max_norm")
    title = "global grad norm (epoch average)"
    # The clip line only where the norms come near it: far above them it would flatten them into a line.
    if clip is not None and norms and float(clip) <= 3 * max(norms):
        norm_axis.axhline(float(clip), color="0.4", linestyle="--", linewidth=1, label=f"clip norm {clip:g}")
        norms.append(float(clip))
    elif clip is not None:
        title += f"\nclip norm {clip:g}: never reached"
    if norms and max(norms) / min(norms) > 10:
        norm_axis.set_yscale("log")  # pre-clip norms can be orders of magnitude apart over a run
        title = title.replace("(epoch average)", "(epoch average, log scale)")
    norm_axis.set_title(title, fontsize=10)
    norm_axis.legend(fontsize=8)
    used = [loss_axis, norm_axis]
    if not constant_lr:
        lr_axis = axes[2]
        lr_axis.plot(x_lr, lr, marker="o", markersize=3, color="tab:purple")
        lr_axis.set_title("learning rate (end of epoch)")
        lr_axis.ticklabel_format(axis="y", style="sci", scilimits=(-2, 2))
        used.append(lr_axis)
    for axis in used:
        _epoch_axis(axis, x)
    return figure


def fairness_figure(run: RunData) -> "Figure":
    """How often each option of each block was trained (strict fairness: equal bars per block)."""
    counts = np.array([run.fairness["option_counts"][name] for name in BLOCK_NAMES], float)
    figure = _figure(10.0, 4.0)
    axis = figure.add_subplot()
    positions = np.arange(len(BLOCK_NAMES))
    width = 0.27
    labels = ("option 0 (depth 1 / k3)", "option 1 (depth 2 / k5)", "option 2 (depth 3 / k7)")
    for option in range(counts.shape[1]):
        bars = axis.bar(positions + (option - 1) * width, counts[:, option], width, label=labels[option])
        axis.bar_label(bars, fmt="%d", fontsize=7, padding=1)
    axis.set_xticks(positions, BLOCK_NAMES)
    axis.set_ylabel("paths trained with the option")
    axis.set_ylim(0, max(1.0, counts.max()) * 1.18)
    axis.set_title(f"Fairness counts after {run.fairness.get('complete_cycles')} cycles "
                   f"(fairness_gap = {run.fairness.get('fairness_gap')})")
    axis.legend(fontsize=8, ncols=3, loc="upper center")
    axis.grid(True, axis="y", alpha=0.3)
    return figure


def early_stop_figure(run: RunData) -> "Figure":
    """Pool-mean EPE with the running best, the improvement threshold and the early-stop state."""
    config = run.early_stop_config()
    state = run.last_state.get("early_stop", {})
    min_delta = float(config.get("min_delta", 0.0))
    epochs, mean = _series(run, run.mean_column)
    figure = _figure(10.0, 4.2)
    axis = figure.add_subplot()
    axis.plot(epochs, mean, marker="o", markersize=3, color="black", label=run.mean_column)
    if len(mean):
        best = np.minimum.accumulate(mean)
        axis.step(epochs, best, where="post", color="tab:green", label="best so far")
        axis.step(epochs, best - min_delta, where="post", color="tab:green", linestyle=":",
                  label=f"must beat: best - min_delta ({min_delta:g})")
    if state.get("best_epoch") is not None:
        axis.axvline(state["best_epoch"], color="tab:green", alpha=0.5, linewidth=6,
                     label=f"early-stop best epoch {state['best_epoch']}")
    if state.get("stopped_epoch") is not None:
        axis.axvline(state["stopped_epoch"], color="tab:red", linestyle="--", label=f"stopped at epoch {state['stopped_epoch']}")
    axis.set_ylabel("EPE (px)")
    axis.set_title(f"Early stopping: bad epochs {state.get('bad_epochs', '?')}/{config.get('patience', '?')}, "
                   f"min epochs {config.get('min_epochs_before_early_stop', '?')}, "
                   f"{'stopped' if state.get('stopped_epoch') is not None else 'not stopped'}")
    _epoch_axis(axis, epochs)
    axis.legend(fontsize=8)
    return figure


def ranking_figure(run: RunData, taus: Sequence[TauStep], last_epochs: int = 10) -> "Figure":
    """Left: each subnet's rank over the last evaluated epochs; right: Kendall tau between consecutive epochs."""
    rows = run.evaluated()[-last_epochs:]
    figure = _figure(12.5, 4.8)
    rank_axis, tau_axis = figure.subplots(1, 2, width_ratios=(1.6, 1.0))
    epochs = [row["epoch"] for row in rows]
    table = np.array([ranks([row[c] for c in run.epe_columns]) for row in rows], float).reshape(len(rows), -1)
    for index, (name, colour) in enumerate(zip(run.pool_names, _subnet_colours(len(run.pool)))):
        rank_axis.plot(epochs, table[:, index], markersize=4, color=colour, **_subnet_style(index))
        if len(rows):
            # Ranks are distinct, so names placed at the final rank never overlap.
            rank_axis.annotate(name, (epochs[-1], table[-1, index]), xytext=(8, 0), textcoords="offset points",
                               va="center", fontsize=8, color=colour, fontfamily="monospace")
    rank_axis.set_ylim(len(run.pool) + 0.5, 0.5)
    rank_axis.set_yticks(range(1, len(run.pool) + 1))
    rank_axis.set_ylabel("rank by EPE (1 = best)")
    rank_axis.set_title(f"Pool ranking, last {len(rows)} evaluated epochs (names at the final rank)")
    rank_axis.spines[["right", "top"]].set_visible(False)
    _epoch_axis(rank_axis, epochs)
    tau_axis.plot([t.epoch_to for t in taus], [t.tau for t in taus], marker="o", color="tab:blue")
    tau_axis.axhline(1.0, color="0.5", linewidth=0.8)
    tau_axis.axhline(0.0, color="0.5", linewidth=0.8, linestyle=":")
    tau_axis.set_ylim(-1.05, 1.05)
    tau_axis.set_ylabel("Kendall τ (epoch e-1 vs e)")
    tau_axis.set_title("Ranking stability" if taus else "Ranking stability (needs 2 evaluated epochs)")
    _epoch_axis(tau_axis, [t.epoch_to for t in taus] or epochs)
    return figure


def _error_colours():
    """The error maps' colours as a matplotlib colour map: exactly ``flow_viz.error_to_rgb``'s (TensorBoard's)."""
    from matplotlib.colors import ListedColormap

    return ListedColormap(error_to_rgb(np.linspace(0.0, 1.0, 256), 1.0) / 255.0, name="efnas_error")


def flow_samples_figure(samples: Sequence[FlowSample], max_error: Optional[float] = None) -> "Figure":
    """Per sample: img0, img1, GT flow, each prediction (all flows on the GT's scale) and its end-point-error
    map, with a colour bar for the errors (one scale for every map)."""
    labels = list(samples[0].predictions) if samples else []
    columns = 3 + 2 * len(labels)
    figure = _figure(2.5 * columns + 0.8, 2.2 * max(1, len(samples)) + 0.5)
    grid = figure.subplots(max(1, len(samples)), columns, squeeze=False)
    errors = [endpoint_error(s.predictions[label], s.flow_gt) for s in samples for label in labels]
    top = max_error if max_error is not None else max([float(np.percentile(e, 99)) for e in errors] + [1e-6])
    mappable = None
    for row, sample in zip(grid, samples):
        scale = flow_magnitude_max(sample.flow_gt)
        panels = [(sample.img0, f"{sample.sample_id} img0"), (sample.img1, "img1"),
                  (flow_to_rgb(sample.flow_gt, scale), f"GT flow (max {scale:.2f} px)")]
        for label in labels:
            panels.append((flow_to_rgb(sample.predictions[label], scale), f"pred {label}"))
        for label in labels:
            epe = endpoint_error(sample.predictions[label], sample.flow_gt)
            panels.append((epe, f"error {label}\nEPE {epe.mean():.2f} px"))
        for index, (axis, (image, title)) in enumerate(zip(row, panels)):
            if index >= 3 + len(labels):  # an error map: values in px, one colour scale for all
                mappable = axis.imshow(image, cmap=_error_colours(), vmin=0.0, vmax=top, interpolation="nearest")
            else:
                axis.imshow(image, interpolation="nearest")
            axis.set_title(title, fontsize=8)
            axis.set_xticks([])
            axis.set_yticks([])
    if mappable is not None:
        bar = figure.colorbar(mappable, ax=grid[:, -len(labels):].ravel().tolist(), shrink=0.8, pad=0.01)
        bar.set_label("end-point error (px)", fontsize=8)
        bar.ax.tick_params(labelsize=7)
    figure.suptitle("GT and predicted flow of a sample share one colour scale (the GT's largest motion = full "
                    f"saturation; wheel below); error maps 0 .. {top:.2f} px", fontsize=9)
    return figure


def wheel_figure(size: int = 151) -> "Figure":
    """The colour-wheel legend: direction = hue, length = saturation."""
    figure = _figure(2.2, 2.4)
    axis = figure.add_subplot()
    axis.imshow(wheel_legend(size), extent=(-1, 1, 1, -1))
    axis.set_title("flow colour wheel\n(x right, y down)", fontsize=8)
    axis.set_xticks([-1, 0, 1])
    axis.set_yticks([-1, 0, 1])
    axis.tick_params(labelsize=7)
    return figure


LABEL_OFFSETS = ((5, 5), (5, -11), (-5, 5), (-5, -11), (5, 14), (5, -20), (-5, 14), (-5, -20))


def _label_points(axis, points: Sequence[Mapping], colour, taken: List, marks: Sequence, size: int = 7) -> None:
    """Each point's name beside it, at the first of ``LABEL_OFFSETS`` where it overlaps no name already placed
    (``taken``: their boxes in display pixels, shared between calls) and no other point (``marks``, display
    pixels).  Names stay out of the layout, so placing them does not move the axes."""
    renderer = axis.figure.canvas.get_renderer()
    for point in sorted(points, key=lambda p: (p["macs"], p["epe"])):
        xy = (point["macs"] / 1e9, point["epe"])
        here = axis.transData.transform(xy)
        others = [mark for mark in marks if not np.allclose(mark, here)]
        for dx, dy in LABEL_OFFSETS:
            text = axis.annotate(point["name"], xy, xytext=(dx, dy), textcoords="offset points", fontsize=size,
                                 color=colour, fontfamily="monospace", ha="left" if dx > 0 else "right")
            text.set_in_layout(False)
            box = text.get_window_extent(renderer).expanded(1.04, 1.15)
            clear = not any(box.overlaps(other) for other in taken) and not any(
                box.x0 - 4 <= x <= box.x1 + 4 and box.y0 - 4 <= y <= box.y1 + 4 for x, y in others)
            if clear or (dx, dy) == LABEL_OFFSETS[-1]:
                taken.append(box)
                break
            text.remove()


def epe_macs_figure(pool: Sequence[Mapping], baseline: Optional[Mapping] = None,
                    fronts: Optional[Mapping[str, Sequence[Mapping]]] = None, pool_label: str = "pool",
                    baseline_label: str = "EdgeFlowNet baseline") -> "Figure":
    """Validation EPE vs GMACs: the pool subnets (named), the baseline (a star) and each search's front (a staircase).

    Points are mappings with ``name``, ``epe`` and ``macs``; ``fronts`` maps a label to a front's entries.
    The legend sits outside the axes (it never hides a point) and names are placed once the layout is
    final, where they overlap no other name and no point.
    """
    figure = _figure(10.5, 5.6)
    axis = figure.add_subplot()
    points = list(pool) + [e for front in (fronts or {}).values() for e in front] + ([baseline] if baseline else [])
    if points:  # fixed limits with room for the names at the edges: names are placed in display pixels
        xs, ys = [p["macs"] / 1e9 for p in points], [p["epe"] for p in points]
        xpad, ypad = (max(xs) - min(xs) or max(xs) or 1.0) * 0.12, (max(ys) - min(ys) or 1.0) * 0.1
        axis.set_xlim(min(xs) - xpad, max(xs) + xpad)
        axis.set_ylim(min(ys) - ypad, max(ys) + ypad)
    labelled = []
    if pool:
        axis.scatter([p["macs"] / 1e9 for p in pool], [p["epe"] for p in pool], s=32, color="tab:blue",
                     label=pool_label, zorder=3)
        labelled.append((pool, "tab:blue"))
    colours = ["tab:red", "tab:green", "tab:purple", "tab:brown", "tab:olive"]
    for (label, front), colour in zip((fronts or {}).items(), colours * 4):
        ordered = sorted(front, key=lambda e: e["macs"])
        x, y = [e["macs"] / 1e9 for e in ordered], [e["epe"] for e in ordered]
        axis.step(x, y, where="post", color=colour, linewidth=1.2, alpha=0.8)
        axis.scatter(x, y, s=18, color=colour, marker="s", label=label, zorder=3)
        if len(ordered) <= 8:
            labelled.append((ordered, colour))
    if baseline is not None:
        axis.scatter([baseline["macs"] / 1e9], [baseline["epe"]], s=170, marker="*", color="black",
                     label=baseline_label, zorder=4)
    axis.set_xlabel("GMACs per image pair (FLOPs = 2 x MACs)")
    axis.set_ylabel("validation EPE (training-resolution px)")
    axis.set_title("EPE vs MACs (lower left is better)")
    axis.grid(True, alpha=0.3)
    axis.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)  # never over a point
    figure.draw_without_rendering()  # the constrained layout settles the axes before names are placed
    taken: List = []
    marks = [axis.transData.transform((p["macs"] / 1e9, p["epe"])) for p in points]
    if baseline is not None:
        _label_points(axis, [dict(baseline, name=f"baseline {baseline['name']}")], "black", taken, marks, 8)
    for group, colour in labelled:
        _label_points(axis, group, colour, taken, marks)
    return figure

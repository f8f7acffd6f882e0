"""``efnas report``: figures and a self-contained HTML page for a run directory (options only)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import click

from edgeflownas.cli.options import collect_overrides, data_location_options


@click.command("report")
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.option("--out", "out_dir", type=click.Path(path_type=Path), default=None,
              help="Folder for report.html and the PNG figures (default: RUN_DIR/report).")
@click.option("--ckpt", "which", type=click.Choice(["best", "last"]), default="best", show_default=True,
              help="Checkpoint the flow pictures are computed from.")
@click.option("--flow-samples", "--flow_samples", "flow_samples", type=click.IntRange(min=0), default=3,
              show_default=True, help="Fixed validation samples in the flow pictures; 0 skips them (no TensorFlow).")
@click.option("--tau-epochs", "--tau_epochs", "tau_epochs", type=click.IntRange(min=1), default=10,
              show_default=True, help="Consecutive-epoch pairs shown in the ranking-stability section.")
@click.option("--cost/--no-cost", "with_cost", default=True, show_default=True,
              help="Params and FLOPs in the ranking table (builds one graph per pool subnet, ~1-2 s each).")
@data_location_options
def report(run_dir: Path, out_dir: Optional[Path], which: str, flow_samples: int, tau_epochs: int,
           with_cost: bool, **locations) -> None:
    """Write PNG figures and one self-contained HTML page about a training run.

    Pool EPE per subnet across epochs (mean +- std band), training curves,
    fairness counts, early-stopping state, the final pool ranking with cost,
    ranking stability (Kendall tau between consecutive epochs) and flow
    pictures (img0, ground truth, baseline and best pool subnet, error maps).
    """
    from edgeflownas.report.build import build_report
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from edgeflownas.report.costs import subnet_cost

    cost = subnet_cost(run_dir) if with_cost else None
    result = build_report(run_dir, out_dir, which, flow_samples, tau_epochs, cost=cost,
                          log=lambda line: click.echo(line, err=True), data_overrides=collect_overrides(locations))
    click.echo(str(result.html))

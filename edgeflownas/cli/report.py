"""``efnas report``: figures and a self-contained HTML page for a run directory (options only)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import click

from edgeflownas.cli.options import Option, collect_overrides, data_location_options, switch_spellings
from edgeflownas.outputs import OutputPath, check_output_folder


@click.command("report")
@click.option("--run", "run_dir", type=click.Path(path_type=Path), default=None,
              help="Run directory of a training run (<output_root>/<experiment>), as in eval and search.")
@click.argument("run_dir_arg", metavar="[RUN_DIR]", required=False, type=click.Path(path_type=Path))
@click.option("--out", "out_dir", type=OutputPath("folder"), default=None,
              help="Folder for report.html and the PNG figures (default: <run>/report).")
@click.option("--ckpt", "which", type=click.Choice(["best", "last"]), default="best", show_default=True,
              help="Checkpoint the flow pictures are computed from.")
@click.option("--flow_samples", "--flow-samples", "flow_samples", type=click.IntRange(min=0), default=3,
              show_default=True, help="Fixed validation samples in the flow pictures; 0 skips them (no TensorFlow).")
@click.option("--tau_epochs", "--tau-epochs", "tau_epochs", type=click.IntRange(min=1), default=10,
              show_default=True, help="Consecutive-epoch pairs shown in the ranking-stability section.")
@click.option(*switch_spellings("cost"), "with_cost", cls=Option, default=True, show_default=True,
              help="Params and MACs in the ranking table and the EPE-vs-MACs figure (the run's exact cost table).")
@data_location_options
def report(run_dir: Optional[Path], run_dir_arg: Optional[Path], out_dir: Optional[Path], which: str,
           flow_samples: int, tau_epochs: int, with_cost: bool, **locations) -> None:
    """Write PNG figures and one self-contained HTML page about a training run.

    Pool EPE per subnet across epochs (mean +- std band), training curves,
    fairness counts, early-stopping state, the final pool ranking with cost,
    ranking stability (Kendall tau between consecutive epochs) and flow
    pictures (img0, ground truth, baseline and best pool subnet, error maps).
    The run directory is --run RUN_DIR (the older 'efnas report RUN_DIR' works too).
    A supernet studied by 'efnas study' gets the study's section too; a study
    directory (holding study.json) gets a page of its own: the supernet-vs-
    stand-alone figure, tau with its intervals, the targets and every subnet.
    """
    from edgeflownas.errors import ConfigError

    if (run_dir is None) == (run_dir_arg is None):
        raise ConfigError("efnas report needs the run directory once: --run RUN_DIR"
                          + (f" (given both --run {run_dir} and {run_dir_arg})" if run_dir else ""))
    run_dir = run_dir or run_dir_arg
    from edgeflownas.report.build import REPORT_FILE

    check_output_folder(out_dir if out_dir is not None else run_dir / "report", "--out", rewrites=REPORT_FILE)
    from edgeflownas.report.study import STUDY_JSON, build_study_report

    if (run_dir / STUDY_JSON).is_file():  # a ranking study directory (efnas study)
        click.echo(str(build_study_report(run_dir, out_dir, log=lambda line: click.echo(line, err=True))))
        return
    from edgeflownas.report.build import build_report
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from edgeflownas.train.trained_run import TrainedRun

    overrides = collect_overrides(locations)
    cost = TrainedRun.open(run_dir, which, overrides).cost if with_cost else None
    result = build_report(run_dir, out_dir, which, flow_samples, tau_epochs, cost=cost,
                          log=lambda line: click.echo(line, err=True), data_overrides=overrides)
    click.echo(str(result.html))

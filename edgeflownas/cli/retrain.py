"""``efnas retrain``: one chosen subnet of a supernet run, trained on its own (option parsing and dispatch only)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import click

from edgeflownas.cli.options import collect_overrides, override_options, resume_from_option
from edgeflownas.cli.train import STOP_SIGNALS


@click.command("retrain")
@click.option("--run", "run_dir", required=True, type=click.Path(path_type=Path),
              help="The supernet run directory the subnet comes from.")
@click.option("--arch", required=True,
              help="The subnet: 'baseline', a 9-digit code ('0,1,2,0,0,1,2,1,0' or 'a012001210'), or 'best' / "
                   "'rank:N' of the run's search front (<run>/search/front.json).")
@click.option("--init", "init", type=click.Choice(["scratch", "supernet"]), default="scratch", show_default=True,
              help="scratch: weights from the seed (stand-alone training); supernet: start from the supernet's "
                   "weights and BN statistics of that path (weight inheritance).")
@click.option("--ckpt", "which", type=click.Choice(["best", "last"]), default="best", show_default=True,
              help="Supernet checkpoint whose config (and, with --init supernet, weights) the retrain starts from.")
@click.option("--config", "config_path", type=click.Path(path_type=Path), default=None,
              help="Config file to train with instead of the supernet run's recorded config.")
@override_options
@resume_from_option
@click.option("--dry_run", "--dry-run", "dry_run", is_flag=True,
              help="Print the resolved config with the source of every value and exit; touches no data.")
def retrain(run_dir: Path, arch: str, init: str, which: str, config_path: Optional[Path], dry_run: bool,
            resume_from: str, **kwargs) -> None:
    """Train one subnet of a supernet run on its own.

    The subnet's network holds only its own path's variables (named as in the
    supernet, so --init supernet copies them exactly); each step trains that
    one path, BN keeps its own statistics, and every epoch evaluates the
    subnet's val EPE (no pool, no recalibration), on which early stop decides.
    The run directory (<output_root>/<experiment_name>) gets everything 'efnas
    train' writes: checkpoints with exact resume, manifest naming the supernet
    run, checkpoint and arch it came from, history, TensorBoard, config.yaml.
    Requires --experiment_name.
    """
    from edgeflownas.config import format_resolved
    from edgeflownas.train.retrain import retrain_config
    from edgeflownas.train.trained_run import TrainedRun

    code = TrainedRun.open(run_dir, which).select(arch)
    resolved = retrain_config(run_dir, code, init, which, config_path, collect_overrides(kwargs))
    if dry_run:
        click.echo(format_resolved(resolved))
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's C++ start-up notices; set before its import
    from edgeflownas.train.api import main_summary, run_training
    from edgeflownas.train.interrupt import StopRequest, deferred_signals

    with deferred_signals(STOP_SIGNALS, StopRequest()) as stop:
        result = run_training(resolved, stop=stop, resume_from=resume_from)
    click.echo(main_summary(result))
    if result.interrupted_by:
        raise click.exceptions.Exit(128 + stop.signum)

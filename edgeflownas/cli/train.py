"""``efnas train``: option parsing and dispatch only (no TensorFlow at import)."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Optional

import click

from edgeflownas.cli.options import collect_overrides, override_options, resume_from_option

# Saved at the next step boundary, then the command exits 128+signal: scancel/preemption (TERM),
# SLURM's --signal warning (USR2), Ctrl-C (INT; a second Ctrl-C stops at once).
STOP_SIGNALS = (signal.SIGTERM, signal.SIGUSR2, signal.SIGINT)


@click.command()
@click.option("--config", "config_path", type=click.Path(path_type=Path), default=None,
              help="YAML run config (default: configs/supernet_fc2_180x240.yaml).")
@override_options
@resume_from_option
@click.option("--overwrite", is_flag=True,
              help="Start afresh in a run directory that holds results: the old run is first moved, untouched, "
                   "to <run_dir>.old-<timestamp> (nothing is deleted).")
@click.option("--dry_run", "--dry-run", "dry_run", is_flag=True,
              help="Print the resolved config with the source of every value and exit; touches no data.")
def train(config_path: Optional[Path], dry_run: bool, resume_from: str, overwrite: bool, **kwargs) -> None:
    """Train the EdgeFlowNAS supernet with strict fairness.

    Each optimizer step runs 3 paths on the same batch (together they use every
    option of every block once), accumulates their gradients and applies one
    Adam update.  Every epoch the fixed 12-subnet pool is evaluated with BN
    recalibration.  Precedence: command line (named options and --set KEY=VALUE,
    each key once) > --config file > schema default; the run directory keeps
    the resolved config as config.yaml.

    SIGTERM, SIGUSR2 or Ctrl-C save supernet_last at the next step (inside the
    epoch) and exit 128+signal; --resume continues exactly from there.  A run
    directory holding results is never written over: without a complete
    supernet_last the start is refused (see --resume_from best, --overwrite),
    and a second train on the same run directory is refused while one runs.
    """
    from edgeflownas.config import format_resolved, resolve

    resolved = resolve(config_path, collect_overrides(kwargs))
    if dry_run:
        click.echo(format_resolved(resolved))
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's C++ start-up notices; set before its import
    from edgeflownas.train.api import main_summary, run_training
    from edgeflownas.train.interrupt import StopRequest, deferred_signals

    with deferred_signals(STOP_SIGNALS, StopRequest()) as stop:
        result = run_training(resolved, stop=stop, overwrite=overwrite, resume_from=resume_from)
    click.echo(main_summary(result))
    if result.interrupted_by:
        raise click.exceptions.Exit(128 + stop.signum)

"""``efnas train``: option parsing and dispatch only (no TensorFlow at import)."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Optional

import click

from edgeflownas.cli.options import collect_overrides, override_options

# Saved at the next step boundary, then the command exits 128+signal: scancel/preemption (TERM),
# SLURM's --signal warning (USR2), Ctrl-C (INT; a second Ctrl-C stops at once).
STOP_SIGNALS = (signal.SIGTERM, signal.SIGUSR2, signal.SIGINT)


@click.command()
@click.option("--config", "config_path", type=click.Path(path_type=Path), default=None,
              help="YAML run config (default: configs/supernet_fc2_180x240.yaml).")
@override_options
@click.option("--dry_run", "--dry-run", "dry_run", is_flag=True,
              help="Print the resolved config with the source of every value and exit; touches no data.")
def train(config_path: Optional[Path], dry_run: bool, **kwargs) -> None:
    """Train the EdgeFlowNAS supernet with strict fairness.

    Each optimizer step runs 3 paths on the same batch (together they use every
    option of every block once), accumulates their gradients and applies one
    Adam update.  Every epoch the fixed 12-subnet pool is evaluated with BN
    recalibration.  Precedence: CLI option > --config file > schema default.

    SIGTERM, SIGUSR2 or Ctrl-C save supernet_last at the next step (inside the
    epoch) and exit 128+signal; --resume continues exactly from there.
    """
    from edgeflownas.config import format_resolved, resolve

    resolved = resolve(config_path, collect_overrides(kwargs))
    if dry_run:
        click.echo(format_resolved(resolved))
        return
    from edgeflownas.train.api import main_summary, run_training
    from edgeflownas.train.interrupt import StopRequest, deferred_signals

    with deferred_signals(STOP_SIGNALS, StopRequest()) as stop:
        result = run_training(resolved, stop=stop)
    click.echo(main_summary(result))
    if result.interrupted_by:
        raise click.exceptions.Exit(128 + stop.signum)

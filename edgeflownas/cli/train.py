"""``efnas train``: option parsing and dispatch only (no TensorFlow at import)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import click

from edgeflownas.cli.options import collect_overrides, override_options


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
    """
    from edgeflownas.config import format_resolved, resolve

    resolved = resolve(config_path, collect_overrides(kwargs))
    if dry_run:
        click.echo(format_resolved(resolved))
        return
    from edgeflownas.train.api import main_summary, run_training

    result = run_training(resolved)
    click.echo(main_summary(result))

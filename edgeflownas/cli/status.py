"""``efnas status``: option parsing and output only (the states are read by ``launcher.status``)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import click


@click.command()
@click.argument("target", metavar="RUN_DIR|EXPERIMENT")
@click.option("--output_root", "--output-root", "output_root", type=click.Path(path_type=Path), default=None,
              help="Directory holding the experiment named by EXPERIMENT; without it, an existing directory is "
                   "taken as the run or experiment directory (default root: experiment.output_root of the shipped "
                   "config).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document (rows and note) instead of the table.")
def status(target: str, output_root: Optional[Path], as_json: bool) -> None:
    """Show the runs of an experiment or one run directory, submitted or local.

    Per run: SLURM job, state and requeues (submitted runs; sacct), or RUNNING
    / IDLE (local runs: whether a process holds the run directory's lock),
    epoch reached, best mean_epe_12, the last checkpoint's global step, and
    the log files (train.log; SLURM stdout/stderr).  A run whose history file
    is damaged is one line (file and byte or line) and the others are still
    shown; the exit code is then 1.
    """
    import json

    from launcher.status import damaged_line, find_target, format_status, status_of

    rows, note = status_of(find_target(target, output_root))
    damaged = [row for row in rows if row.damaged]
    if as_json:
        click.echo(json.dumps({"runs": [row.to_dict() for row in rows], "note": note}, indent=2))
        for row in damaged:
            click.echo(damaged_line(row), err=True)
    else:
        click.echo(format_status(rows, note))
    if damaged:
        raise click.exceptions.Exit(1)

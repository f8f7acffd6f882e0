"""``efnas study``: option parsing and dispatch only (the steps are ``launcher.study``)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Tuple

import click

from edgeflownas.config import Overrides, parse_set


@click.command("study")
@click.option("--config", "config_path", required=True, type=click.Path(path_type=Path),
              help="Study config (schemas/study_config.schema.json), e.g. configs/study_small.yaml.")
@click.option("--set", "set_values", multiple=True, metavar="KEY=VALUE",
              help="Override a study config key, e.g. --set study.local_workers=2 or "
                   "--set retrain.seeds=[1,2,3]; repeatable.")
@click.option("--dry_run", "--dry-run", "dry_run", is_flag=True,
              help="Validate the study config and every run config it implies, show the runs and what is already "
                   "finished; trains and writes nothing.")
def study(config_path: Path, set_values: Tuple[str, ...], dry_run: bool) -> None:
    """Does the supernet rank subnets the way stand-alone training does?

    Trains the supernet (or takes supernet.run), scores K subnets on it (BN
    recalibrated, and on the training BN statistics), retrains each from
    scratch once per seed, and writes <study>/study.json (Kendall tau-b and
    Spearman rho between supernet and stand-alone EPE with bootstrap
    intervals, the noise ceiling tau between seeds, MACs-only and params-only
    tau, tau without recalibration, per-subnet figures) and study.png.

    Every step is resumable: run the same command again after a crash, kill or
    requeue. With a slurm: section every training goes through efnas submit
    (the retrains as one job array) and this command waits for them; it can
    itself run as a job.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from launcher.study import dry_run as describe
    from launcher.study import load_study, run_study

    values, options = {}, {}
    for spec in set_values:
        key, value = parse_set(spec)
        values[key], options[key] = value, f"--set {spec}"
    loaded = load_study(config_path, Overrides(values, options))
    if dry_run:
        click.echo(describe(loaded), nl=False)
        return
    run_study(loaded, lambda line: click.echo(line))

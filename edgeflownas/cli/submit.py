"""``efnas submit``: option parsing and dispatch only (the planning and submission are ``launcher``'s)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Tuple

import click

from edgeflownas.cli.options import collect_overrides, override_options


@click.command()
@click.option("--config", "config_path", type=click.Path(path_type=Path), default=None,
              help="YAML run config with an optional slurm: section (default: configs/supernet_fc2_180x240.yaml).")
@override_options
@click.option("--container", "container", type=str, default=None,
              help="Apptainer image (.sif) to run in via 'apptainer exec --nv' [config: slurm.container_image].")
@click.option("--sweep", "sweeps", multiple=True, metavar="KEY=V1,V2|FILE",
              help="Grid axis (dotted key or train option name, e.g. seed=1,2 or train.lr=1e-4,3e-4) or a YAML "
                   "file {key: [values]}; repeatable. Trials go out as one job array.")
@click.option("--retrain", "retrain_run", type=click.Path(path_type=Path), default=None,
              help="Submit retrains of subnets of this supernet run instead of a training: one array task per "
                   "--arch code (run dirs <output_root>/<experiment_name>/<arch name>), on the run's recorded "
                   "config (or --config); see 'efnas retrain --help'.")
@click.option("--arch", "archs", multiple=True,
              help="With --retrain: subnets, repeatable or ';'-separated: 'pool' (the run's pool), 'baseline', "
                   "codes, 'best' / 'rank:N' of the run's search front.")
@click.option("--init", "init", type=click.Choice(["scratch", "supernet"]), default="scratch", show_default=True,
              help="With --retrain: start from the seed or from the supernet's weights of each path.")
@click.option("--ckpt", "which", type=click.Choice(["best", "last"]), default="best", show_default=True,
              help="With --retrain: the supernet checkpoint the retrains start from.")
@click.option("--dry_run", "--dry-run", "dry_run", is_flag=True,
              help="Validate everything and print the sbatch script that would be submitted; submits nothing.")
def submit(config_path: Optional[Path], container: Optional[str], sweeps: Tuple[str, ...], dry_run: bool,
           retrain_run: Optional[Path], archs: Tuple[str, ...], init: str, which: str, **kwargs) -> None:
    """Submit supernet training (or, with --retrain, subnet retrains) to SLURM through submitit.

    The config (and every sweep trial) is validated first; an invalid value
    means nothing is submitted.  The run directory is <output_root>/<name>
    (sweeps: <output_root>/<name>/<trial>).  Re-running skips finished trials
    and trials whose job is still queued or running; the others resume from
    their run directory.
    """
    from launcher.plan import build_plan
    from launcher.submit import dry_run as render_dry_run
    from launcher.submit import format_outcome, submit_plan

    retrain = None
    if retrain_run is not None:
        from edgeflownas.report.eval_run import resolve_selection
        from edgeflownas.train.trained_run import TrainedRun
        from launcher.plan import RetrainRequest

        if not archs:
            raise click.UsageError("--retrain needs --arch (e.g. --arch pool --arch baseline)")
        source = TrainedRun.open(retrain_run, which)
        codes = resolve_selection(archs, source.pool, source.select)
        retrain = RetrainRequest(retrain_run, tuple(codes), init, which)
    elif archs:
        raise click.UsageError("--arch applies to --retrain RUN only")
    plan = build_plan(config_path, collect_overrides(kwargs), sweeps, container, retrain=retrain)
    if dry_run:
        click.echo(render_dry_run(plan), nl=False)
        return
    decisions, submitted = submit_plan(plan)
    click.echo(format_outcome(plan, decisions, submitted))

"""``efnas study``: option parsing and dispatch only (the steps are ``launcher.study``)."""

from __future__ import annotations

import os
import signal
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
    """Does the supernet rank subnets better than counting blocks?

    Fixes K subnets stratified over total depth and MACs (subnets.json, before
    anything trains), trains the supernets (one per supernet.seeds entry; or
    takes supernet.run), scores every subnet on each, retrains each from
    scratch once per seed, and writes <study>/study.json: the reference (median
    over seeds of the last epochs' mean val EPE), the noise ceiling (seed-vs-seed
    tau), Kendall tau of the supernet against it, the trivial predictors MACs,
    params and depth with their favoured sign, partial tau given depth and given
    MACs, tau between the supernet seeds, stuck retrains, bootstrap intervals,
    the targets and the verdict ("cannot tell" below a 0.6 noise ceiling); and
    study.png.

    The supernet scores go to each supernet run's search store
    (<run>/search/store, where 'efnas search --run RUN' keeps its scores), so
    neither command scores a subnet the other has scored with the same
    settings; a run that cannot be written leaves them in <study>/score_store.

    Every step is resumable: run the same command again after a crash, kill or
    requeue. Ctrl-C or SIGTERM stop it within a step: each local training
    running saves at its next optimizer step and the same command resumes
    it. With a slurm: section every training goes through efnas submit (the
    retrains as one job array) and this command waits for them; it can
    itself run as a job. Stopping it leaves those jobs training on the
    cluster: the same command run again finds them active and waits for
    them instead of submitting them twice.
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
    from edgeflownas.train.interrupt import signals_interrupt

    # scancel or a kill ends the study with one line once its trainings have saved (launcher.study._stop_workers)
    with signals_interrupt([signal.SIGTERM]):
        run_study(loaded, lambda line: click.echo(line))

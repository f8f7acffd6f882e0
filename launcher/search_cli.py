"""``efnas search``: local by default, each generation a SLURM job array with --slurm."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import click

from edgeflownas.cli.search import SEARCH_HELP, run_and_print, search_options, search_request


@click.command("search", help=SEARCH_HELP)
@search_options
@click.option("--slurm", "use_slurm", is_flag=True,
              help="Score each generation as a SLURM job array (sbatch parameters from the run's recorded "
                   "slurm: section, or from --config); this process waits and can itself run as a job.")
@click.option("--config", "config_path", type=click.Path(path_type=Path), default=None,
              help="With --slurm: a config file whose slurm: section to use instead of the run's.")
@click.option("--array_tasks", "--array-tasks", "array_tasks", type=int, default=None,
              help="With --slurm: tasks per generation's array [default: slurm.array_parallelism].")
@click.option("--container", type=str, default=None,
              help="With --slurm: Apptainer image (.sif) the tasks run in [config: slurm.container_image].")
def search(use_slurm: bool, config_path: Optional[Path], array_tasks: Optional[int], container: Optional[str],
           as_json: bool, **kwargs) -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    request = search_request(kwargs)
    remote = run = None
    if use_slurm:
        from edgeflownas.train.trained_run import TrainedRun
        from launcher.search_array import array_evaluation, slurm_section

        run = TrainedRun.open(request.run_dir, request.which, request.data_overrides)
        slurm_cfg = slurm_section(run, config_path)
        remote = array_evaluation(run, request.out_dir, slurm_cfg, array_tasks or slurm_cfg.array_parallelism,
                                  lambda line: click.echo(line, err=True), container)
    elif config_path is not None or array_tasks is not None or container is not None:
        raise click.UsageError("--config, --array_tasks and --container only apply with --slurm")
    run_and_print(request, as_json, remote, run)

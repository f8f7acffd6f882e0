"""``efnas search``: local by default, each generation a SLURM job array (``launcher.search_array``) with --slurm."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Callable, Dict, Optional

import click

from edgeflownas.cli.options import Option, collect_overrides, data_location_options
from edgeflownas.outputs import OutputPath, check_output_folder
from edgeflownas.search.strategies import STRATEGIES


def search_options(func: Callable) -> Callable:
    """Decorate a click command with the search's options."""
    options = [
        click.option("--run", "run_dir", required=True, type=click.Path(path_type=Path),
                     help="Run directory of a supernet training run (<output_root>/<experiment>)."),
        click.option("--out", "out_dir", type=OutputPath("folder"), default=None,
                     help="Search directory (store, front.json, all.jsonl, front.png). Default: <run>/search. "
                          "Re-running into the same directory reuses every stored score (the default's store "
                          "also holds efnas study's supernet scores of the run)."),
        click.option("--strategy", type=click.Choice(list(STRATEGIES)), default="evolution", show_default=True,
                     help="; ".join(f"{name}: {strategy.help}" for name, strategy in STRATEGIES.items()) + "."),
        click.option("--budget", type=int, default=100, show_default=True,
                     help="Distinct candidates to score (ignored by exhaustive)."),
        click.option("--constraint", "constraints", multiple=True,
                     help="Cost bound, repeatable: 'macs<=2.0e9', 'params<=2.5e6' (MACs per image pair at the "
                          "run's input size; FLOPs = 2 x MACs), 'latency<=15ms' (with --latency_table). Checked "
                          "before scoring."),
        click.option("--objective", type=click.Choice(["macs", "latency"]), default="macs", show_default=True,
                     help="The cost EPE is traded against: evolution's second objective and the front 'ranked' "
                          "(best, rank:N) orders; latency needs --latency_table."),
        click.option("--latency_table", "--latency-table", "latency_table", type=click.Path(path_type=Path),
                     default=None, help="A table written by 'efnas latency' for this run: every subnet's predicted "
                                        "latency goes beside its MACs (front.json, front.png, the table)."),
        click.option("--latency_precision", "--latency-precision", "latency_precision",
                     type=click.Choice(["float", "int8"]), default="float", show_default=True,
                     help="Which of the table's latencies: TFLite float32 or full-integer int8."),
        click.option("--latency_threads", "--latency-threads", "latency_threads", type=int, default=None,
                     help="Which thread count of the table (default: the fewest it measured)."),
        click.option("--fix", "fixed", multiple=True,
                     help="Fix a block, repeatable: 'EB0=0' (blocks EB0 EB1 DB0 DB1 H0..H4, options 0/1/2)."),
        click.option("--strategy_seed", "--strategy-seed", "strategy_seed", cls=Option, aliases=("--seed",), type=int,
                     default=0, show_default=True,
                     help="Seed of the strategy's proposals only (--seed is the old spelling). Scores never depend "
                          "on it: every subnet is scored with the run's own BN-recalibration batches and seed."),
        click.option("--ckpt", "which", type=click.Choice(["best", "last"]), default="best", show_default=True,
                     help="Supernet checkpoint to score with."),
        click.option("--population", type=int, default=20, show_default=True,
                     help="Candidates per generation (also the batch of a random or exhaustive search, and of "
                          "one SLURM array)."),
        click.option("--parents", type=int, default=None,
                     help="Evolution: best codes (non-dominated rank on EPE and MACs, then EPE) that breed "
                          "[default: half the population]."),
        click.option("--mutation_prob", "--mutation-prob", "mutation_prob", type=float, default=0.1,
                     show_default=True, help="Evolution: chance to redraw each free block of a mutated child."),
        click.option("--val_batches", "--val-batches", "val_batches", type=int, default=None,
                     help="Score on the first N of the run's validation batches (default: all); the fronts are "
                          "then re-scored on all of them."),
        click.option("--json", "as_json", is_flag=True, help="Print front.json on stdout (log lines go to stderr)."),
    ]
    func = data_location_options(func)
    for option in reversed(options):
        func = option(func)
    return func


def search_request(kwargs: Dict[str, Any]):
    """The SearchRequest the search options describe; a usage mistake (exit 2) before anything is read or submitted."""
    from edgeflownas.search.run import STORE_DIR, SearchRequest
    from edgeflownas.search.space import parse_constraint, parse_fixed
    from edgeflownas.search.strategies import StrategySettings

    settings = StrategySettings(kwargs["strategy"], kwargs["budget"], kwargs["strategy_seed"], kwargs["population"],
                                kwargs["parents"], kwargs["mutation_prob"], kwargs["objective"])
    settings.check()
    for text in kwargs["constraints"]:
        parse_constraint(text)
    parse_fixed(kwargs["fixed"])
    run_dir = Path(kwargs["run_dir"])
    out_dir = kwargs["out_dir"] if kwargs["out_dir"] is not None else run_dir / "search"
    check_output_folder(out_dir, "--out", own="search directory", rewrites=STORE_DIR)
    return SearchRequest(run_dir, Path(out_dir), settings, tuple(kwargs["constraints"]), tuple(kwargs["fixed"]),
                         kwargs["which"], kwargs["val_batches"], collect_overrides(kwargs), kwargs["latency_table"],
                         kwargs["latency_precision"], kwargs["latency_threads"])


def run_and_print(request, as_json: bool, remote: Optional[Any] = None, run: Optional[Any] = None) -> None:
    """Run the search and print its top table (or front.json)."""
    from edgeflownas.nas.front import format_table, ranked_front
    from edgeflownas.search.run import run_search

    doc = run_search(request, log=lambda line: click.echo(line, err=True), remote=remote, run=run)
    if as_json:
        click.echo(json.dumps(doc, indent=2))
        return
    click.echo(format_table(doc))
    click.echo(f"{doc['scored']} subnets scored ({doc.get('searched', doc['scored'])} by the strategy, the rest pool and "
               f"baseline); front (EPE vs {doc.get('objective', 'macs')}) of {len(ranked_front(doc))}; "
               f"written to {request.out_dir}: front.json, all.jsonl, front.png")


@click.command("search")
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
    """Search a trained supernet's subnets for the best EPE-vs-cost trade-offs.

    Every candidate is scored as 'efnas eval' scores a subnet (BN recalibrated
    on the run's fixed training batches drawn with the run's own seed, EPE on
    its validation batches): the same number to the last digit, whatever the
    strategy or --strategy_seed.  One graph serves the whole search; each
    score is stored at once, keyed by the checkpoint's digest and the scoring
    settings, so a killed or requeued search continues when the same command
    runs again and, with the same strategy seed, ends with the same front.
    The run's pool subnets and the EdgeFlowNet baseline are scored too and
    belong to the fronts.  Writes front.json (Pareto fronts EPE vs MACs and
    EPE vs params, ranked by EPE), all.jsonl and front.png; prints the top of
    the front.  With --slurm each generation is scored by a SLURM job array
    instead of this process.
    """
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

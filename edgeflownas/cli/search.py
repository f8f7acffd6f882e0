"""``efnas search`` options and output; the command itself is ``launcher.search_cli`` (it can submit SLURM arrays)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Dict, Optional

import click

from edgeflownas.cli.options import collect_overrides, data_location_options
from edgeflownas.outputs import OutputPath, check_output_folder

SEARCH_HELP = """Search a trained supernet's subnets for the best EPE-vs-cost trade-offs.

    Every candidate is scored as 'efnas eval' scores a subnet (BN recalibrated
    on the run's fixed training batches, EPE on its validation batches), in one
    graph for the whole search; each score is stored at once, so a killed or
    requeued search continues when the same command runs again and, with the
    same seed, ends with the same front.  Writes front.json (Pareto fronts EPE
    vs MACs and EPE vs params, ranked by EPE), all.jsonl and front.png; prints
    the top of the front.  With --slurm each generation is scored by a SLURM
    job array instead of this process.
    """


def search_options(func: Callable) -> Callable:
    """Decorate a click command with the search's options."""
    options = [
        click.option("--run", "run_dir", required=True, type=click.Path(path_type=Path),
                     help="Run directory of a supernet training run (<output_root>/<experiment>)."),
        click.option("--out", "out_dir", type=OutputPath("folder"), default=None,
                     help="Search directory (store, front.json, all.jsonl, front.png). Default: <run>/search. "
                          "Re-running into the same directory reuses every stored score."),
        click.option("--strategy", type=click.Choice(["evolution", "random", "exhaustive"]), default="evolution",
                     show_default=True, help="evolution (SPOS-style, two objectives), random (the baseline to "
                                             "beat), exhaustive (every feasible code; small spaces)."),
        click.option("--budget", type=int, default=100, show_default=True,
                     help="Distinct candidates to score (ignored by exhaustive)."),
        click.option("--constraint", "constraints", multiple=True,
                     help="Cost bound, repeatable: 'macs<=2.0e9', 'params<=2.5e6' (MACs per image pair at the "
                          "run's input size; FLOPs = 2 x MACs). Checked before scoring."),
        click.option("--fix", "fixed", multiple=True,
                     help="Fix a block, repeatable: 'EB0=0' (blocks EB0 EB1 DB0 DB1 H0..H4, options 0/1/2)."),
        click.option("--seed", type=int, default=0, show_default=True, help="Seed of the strategy's proposals."),
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

    settings = StrategySettings(kwargs["strategy"], kwargs["budget"], kwargs["seed"], kwargs["population"],
                                kwargs["parents"], kwargs["mutation_prob"])
    settings.check()
    for text in kwargs["constraints"]:
        parse_constraint(text)
    parse_fixed(kwargs["fixed"])
    run_dir = Path(kwargs["run_dir"])
    out_dir = kwargs["out_dir"] if kwargs["out_dir"] is not None else run_dir / "search"
    check_output_folder(out_dir, "--out", own="search directory", rewrites=STORE_DIR)
    return SearchRequest(run_dir, Path(out_dir), settings, tuple(kwargs["constraints"]), tuple(kwargs["fixed"]),
                         kwargs["which"], kwargs["val_batches"], collect_overrides(kwargs))


def run_and_print(request, as_json: bool, remote: Optional[Any] = None) -> None:
    """Run the search and print its top table (or front.json)."""
    from edgeflownas.search.front import format_table
    from edgeflownas.search.run import run_search

    doc = run_search(request, log=lambda line: click.echo(line, err=True), remote=remote)
    if as_json:
        click.echo(json.dumps(doc, indent=2))
        return
    click.echo(format_table(doc))
    click.echo(f"{doc['scored']} candidates scored; front (EPE vs MACs) of {len(doc['front_macs'])}; "
               f"written to {request.out_dir}: front.json, all.jsonl, front.png")

"""``efnas eval``: evaluate subnets of a trained supernet (option parsing and output only)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Optional, Tuple

import click

from edgeflownas.cli.options import Option, collect_overrides, data_location_options, switch_spellings
from edgeflownas.outputs import OutputPath, check_output_file
from edgeflownas.report.eval_run import EVAL_RESULTS


@click.command("eval")
@click.option("--run", "run_dir", required=True, type=click.Path(path_type=Path),
              help="Run directory of a training run (<output_root>/<experiment>).")
@click.option("--arch", "arch", required=True, multiple=True,
              help="'pool' (the run's evaluation pool), 'baseline' (EdgeFlowNet 0,0,0,0,2,1,2,2,2) or arch codes "
                   "('0,1,2,0,0,1,2,1,0', '[0,1,...]' or 'a012001210'); several separated by ';' or repeated.")
@click.option("--ckpt", "which", type=click.Choice(["best", "last"]), default="best", show_default=True,
              help="Checkpoint to evaluate: supernet_best.ckpt or supernet_last.ckpt.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document on stdout (log lines go to stderr).")
@click.option("--sort", "sort", type=click.Choice(["epe", "macs", "params", "pool"]), default="epe",
              show_default=True,
              help="Row order of the table and of --out: by EPE, MACs or params (ascending), or 'pool': the order "
                   "of --arch (the pool's own order for 'pool').")
@click.option("--out", "out", type=OutputPath("file", EVAL_RESULTS), default=None,
              help="Also write the rows to a file: results.csv (one row per subnet) or results.json (the --json "
                   "document); the format is read from the suffix. An existing file needs --overwrite.")
@click.option("--overwrite", is_flag=True,
              help="Replace an existing --out file (never one inside a run directory or a dataset).")
@click.option("--debug_trace", "--debug-trace", "debug_trace", is_flag=True,
              help="Add the BN moving-statistics summaries before/after recalibration to each subnet's log line.")
@click.option(*switch_spellings("native_epe"), "native_epe", cls=Option, default=True, show_default=True,
              help="Also give each subnet's EPE at the data's native resolution (prediction upsampled bilinearly "
                   "and rescaled, ground truth read at full resolution: the number papers report); not available "
                   "from shards packed at the training size.")
@click.option("--latency_table", "--latency-table", "latency_table", type=click.Path(path_type=Path), default=None,
              help="A table written by 'efnas latency' for this run: each subnet's predicted latency (ms) beside "
                   "its MACs.")
@click.option("--latency_precision", "--latency-precision", "latency_precision", type=click.Choice(["float", "int8"]),
              default="float", show_default=True, help="Which of the table's latencies: TFLite float32 or int8.")
@click.option("--latency_threads", "--latency-threads", "latency_threads", type=int, default=None,
              help="Which thread count of the table (default: the fewest it measured).")
@data_location_options
def eval_command(run_dir: Path, arch: Tuple[str, ...], which: str, as_json: bool, sort: str, out: Optional[Path],
                 overwrite: bool, debug_trace: bool, native_epe: bool, latency_table: Optional[Path],
                 latency_precision: str, latency_threads: Optional[int], **locations) -> None:
    """Evaluate subnets of a trained run on the validation split.

    Each subnet gets the trainer's BN recalibration (reset, then the run's fixed
    training batches averaged exactly) and is measured on the run's validation
    batches: EPE at the training resolution (the selection metric), EPE at
    the data's native resolution (384x512 for FC2: prediction upsampled
    bilinearly and rescaled, ground truth read at full resolution; what papers
    report), share of pixels with error above 1/3/5 px, parameters and
    MACs (multiply-accumulates per image pair; FLOPs = 2 x MACs, from the
    run's exact cost table), one row per subnet.  A fixed-arch run (a
    retrain) evaluates its own subnet only, with its own BN statistics.  For pool subnets the EPE the trainer logged at
    the same checkpoint is shown beside it.  The data is read where the run
    recorded it; --train_dir/--val_dir/--shards_dir point elsewhere (a run
    directory copied to another machine), as long as it is the same data.

    Progress goes to stderr, one line per subnet with its EPE, k/n and the
    time left.  The table is sorted by EPE (--sort); --out results.csv or
    results.json keeps the rows.
    """
    from edgeflownas.report.eval_run import evaluate_run, format_report, write_report

    if out is not None:  # before minutes of evaluation
        check_output_file(out, "--out", EVAL_RESULTS, overwrite)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    latency = {"table": latency_table, "precision": latency_precision, "threads": latency_threads}
    report = evaluate_run(run_dir, arch, which, log=lambda line: click.echo(line, err=True),
                          data_overrides=collect_overrides(locations),
                          sort=sort, debug_trace=debug_trace, native_epe=native_epe,
                          latency=latency if latency_table is not None else None)
    click.echo(json.dumps(report.to_dict(), indent=2) if as_json else format_report(report))
    if out is not None:
        click.echo(f"wrote {write_report(report, out)}", err=True)

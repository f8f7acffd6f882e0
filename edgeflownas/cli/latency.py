"""``efnas latency``: a latency table of a run's subnets on this device (option parsing and output only)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import click

from edgeflownas.cli.options import spellings
from edgeflownas.errors import ConfigError
from edgeflownas.outputs import JSON_REPORT, OutputPath, check_output_file, check_output_folder


@click.command("latency")
@click.option("--run", "run_dir", type=click.Path(path_type=Path), default=None,
              help="Run directory: build the probe models at its input size and model width (needs TensorFlow).")
@click.option("--probes", "probe_dir", type=click.Path(path_type=Path), default=None,
              help="Instead of --run: a probe directory built by --run ... --probes_out (needs only LiteRT).")
@click.option(*spellings("probes_out"), "probes_out", type=OutputPath("folder"), default=None,
              help="With --run: keep the probe models in this new folder (to copy to a device).")
@click.option(*spellings("build_only"), "build_only", is_flag=True, help="With --run and --probes_out: build the probes, measure nothing.")
@click.option("--out", type=OutputPath("file", JSON_REPORT), default=None,
              help="The latency table to write (a new JSON file).")
@click.option("--threads", default=None,
              help="Comma list of CPU thread counts to measure at (default: 1 and all cores).")
@click.option("--precision", "precisions", default="float,int8", show_default=True,
              help="Comma list of float (TFLite float32) and int8 (full-integer TFLite).")
@click.option("--runs", type=click.IntRange(min=1), default=50, show_default=True,
              help="Timed runs per probe model (after the warm-up), as benchmark_model's --num_runs.")
@click.option("--warmup", type=click.IntRange(min=0), default=5, show_default=True,
              help="Untimed runs per probe model first.")
def latency(run_dir: Optional[Path], probe_dir: Optional[Path], probes_out: Optional[Path], build_only: bool,
            out: Optional[Path], threads: Optional[str], precisions: str, runs: int, warmup: int) -> None:
    """Measure the latency of every block option in context: a table for 'efnas search --objective latency'.

    Probe models are whole exported subnets: a reference (every block at
    option 0) and, for each block and option, the reference with only that
    block changed, plus 6 check subnets from near the reference to the
    largest; float and int8 TFLite.  Each is timed like TFLite's
    benchmark_model (warm-up, then many invoke() calls of a warm model, median
    and 10-90 % spread; probes interleaved in rounds so load changes hit all
    alike) at each thread count.  The table predicts a subnet's latency as the
    reference plus each block's change; its stated error is the largest error
    on the check subnets and the reference, timed with the probes and again in
    a second session.  On a device without TensorFlow: build the probes with
    --run RUN --probes_out DIR --build_only, copy DIR there and run --probes
    DIR --out T.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from edgeflownas.latency.api import check_new_file, latency_for_run, measure_probes, parse_list
    from edgeflownas.latency.table import PRECISIONS, write_table

    if (run_dir is None) == (probe_dir is None):
        raise ConfigError("give either --run RUN (build the probes, then measure) or --probes DIR, not both")
    if probes_out is not None and run_dir is None:
        raise ConfigError("--probes_out needs --run (it is where the probes built from the run are kept)")
    if build_only and probes_out is None:
        raise ConfigError("--build_only needs --run RUN and --probes_out DIR (where the probes are written)")
    if out is None and not build_only:
        raise ConfigError("--out TABLE.json is required (or --build_only with --probes_out to only build probes)")
    if out is not None:  # a new JSON file outside any run, dataset or input (the table is never replaced)
        check_output_file(out, "--out", JSON_REPORT, inputs=[run_dir, probe_dir])
        check_new_file(out, "--out")
    if probes_out is not None:
        check_output_folder(probes_out, "--probes_out", inputs=[run_dir])
    chosen = parse_list(precisions, "--precision", PRECISIONS)
    counts = parse_list(threads if threads is not None else f"1,{os.cpu_count() or 1}", "--threads")
    log = lambda line: click.echo(line, err=True)  # noqa: E731
    if run_dir is not None:
        doc = latency_for_run(run_dir, None if build_only else out, probes_out, counts, chosen, runs, warmup, log)
        if doc is None:
            click.echo(f"wrote the probe models to {probes_out}: copy it to the device and run "
                       f"efnas latency --probes {probes_out.name} --out TABLE.json there")
            return
    else:
        doc = measure_probes(probe_dir, counts, chosen, runs, warmup, log)
        write_table(out, doc)
    _print(doc, out)


def _print(doc: dict, out: Path) -> None:
    from edgeflownas.nas.arch_codec import arch_name

    device = doc["device"]
    click.echo(f"latency table {out}: {doc['input_hw'][0]}x{doc['input_hw'][1]}, init_neurons "
               f"{doc['model']['init_neurons']}, {device['runtime']} {device['runtime_version']} on "
               f"{device['cpu']} ({device['cpus']} cpus), load {doc['measurement']['load_average_start']}")
    for precision, per_threads in doc["latency"].items():
        for threads, entry in per_threads.items():
            terms = entry["stated_error_terms"]
            click.echo(f"  {precision:<5} {threads} thread(s): reference {entry['reference_ms']:.3f} ms, "
                       f"stated error {entry['stated_error_pct']:.0f} % (largest error on {len(entry['check'])} check "
                       f"subnets {terms['model_error_pct']:.1f} % at {arch_name(terms['model_error_at'])} + largest "
                       f"change when timed again {terms['session_shift_pct']:.1f} % at "
                       f"{arch_name(terms['session_shift_at'])}), tau(MACs, latency) {entry['tau_macs_latency']:.2f} "
                       f"over {doc['measurement']['probes']} probes")

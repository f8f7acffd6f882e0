"""``efnas export``: one subnet of a run as SavedModel / TFLite float / TFLite int8 (option parsing and output only)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import click

from edgeflownas.outputs import OutputPath, check_output_folder


@click.command("export")
@click.option("--run", "run_dir", required=True, type=click.Path(path_type=Path),
              help="Run directory: a supernet run (give --arch) or a fixed-arch retrain run (its own arch).")
@click.option("--arch", default=None,
              help="'baseline', a 9-digit code or arch name (a000021222), or 'best' / 'rank:N' of <run>/search.")
@click.option("--out", "out_dir", required=True, type=OutputPath("folder"),
              help="New (or empty) folder for the model files and export_manifest.json; built beside it and "
                   "renamed into place when complete, locked against a second export.")
@click.option("--format", "formats", default="saved_model,tflite,tflite_int8", show_default=True,
              help="Comma list of saved_model, tflite (float32), tflite_int8 (full-integer, Edge TPU form).")
@click.option("--height", type=int, default=None,
              help="Model input height, a multiple of 4 from 16 to 4096 (default: the run's training height).")
@click.option("--width", type=int, default=None,
              help="Model input width, a multiple of 4 from 16 to 4096 (default: the run's training width).")
@click.option("--ckpt", "which", type=click.Choice(["best", "last"]), default="best", show_default=True,
              help="Checkpoint to export: supernet_best.ckpt or supernet_last.ckpt.")
def export(run_dir: Path, arch: Optional[str], out_dir: Path, formats: str, height: Optional[int],
           width: Optional[int], which: str) -> None:
    """Export one subnet with BN folded into its convolutions.

    From a supernet run the BN statistics are recalibrated for the subnet
    exactly as 'efnas eval' does; from a fixed-arch run its own statistics are
    used.  Inputs: img0, img1 uint8 RGB [1,H,W,3]; outputs: flow [1,H,W,2] in
    input pixels and the 2 uncertainty channels.  Every format is scored on
    the run's validation batches (EPE) and compared with the toolkit's own
    forward pass; TFLite files get a latency on this machine.  The int8 file
    is calibrated on the run's training pairs and must be full-integer (else
    the export fails).  Everything is recorded in DIR/export_manifest.json.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from edgeflownas.export.api import check_model_size, check_out_dir, export_run
    from edgeflownas.export.manifest import parse_formats

    chosen = parse_formats(formats)
    check_model_size(height, width)
    check_output_folder(out_dir, "--out", inputs=[run_dir])
    check_out_dir(out_dir)
    doc = export_run(run_dir, arch, out_dir, chosen, which, height, width, log=lambda line: click.echo(line, err=True))
    click.echo(f"exported {doc['arch_name']} ({doc['params']:,d} params, {doc['macs'] / 1e6:.1f} M MACs) "
               f"at {doc['input_hw'][0]}x{doc['input_hw'][1]} to {out_dir}")
    for fmt, entry in doc["formats"].items():
        latency = ""
        if "latency_ms" in entry:
            latency = f", latency {entry['latency_ms']:.2f} ms ({entry['latency']['threads']} thread)"
        diff = entry["max_abs_diff_vs_toolkit_px"]
        shown = f", max |diff| vs toolkit {diff:.2e} px" if diff is not None else ""
        click.echo(f"  {fmt:<12} val EPE {entry['epe']:.4f}{shown}{latency}  {entry['file']}")
    if "int8_epe_increase" in doc:
        click.echo(f"  int8 EPE increase over float: {doc['int8_epe_increase']:+.4f} px")

"""``efnas data-check``, ``efnas synth`` and ``efnas pack``: options over edgeflownas.data."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import click

from edgeflownas.cli.options import Option
from edgeflownas.errors import DataError
from edgeflownas.outputs import JSON_REPORT, OutputPath, check_output_file, check_output_folder

DEFAULT_REPORT = Path("outputs") / "data_check_report.json"
SYNTH_MAX_SIDE = 4096  # edgeflownas.data.synth.MAX_SIDE, not imported so `synth --help` stays light
SYNTH_PRESETS = ("chairs", "learnable")  # edgeflownas.data.synth.PRESETS, likewise


@click.command("data-check")
@click.option("--config", type=click.Path(path_type=Path), help="Run config; scans its data.train_dir and data.val_dir.")
@click.option("--train_dir", "--train-dir", "train_dir", type=click.Path(path_type=Path),
              help="FC2 train/ folder (overrides --config).")
@click.option("--val_dir", "--val-dir", "val_dir", type=click.Path(path_type=Path),
              help="FC2 val/ folder (overrides --config).")
@click.option("--deep", is_flag=True, help="Decode every image and flow (parallel workers) instead of reading headers.")
@click.option("--workers", type=click.IntRange(min=1), default=None, help="Worker processes for --deep [default: all CPUs].")
@click.option("--max_bad", "--max-bad", "max_bad", type=click.IntRange(min=0), default=0, show_default=True,
              help="Bad samples tolerated (all splits together) before the check fails.")
@click.option("--out", "report", cls=Option, aliases=("--report",), type=OutputPath("file", JSON_REPORT),
              default=DEFAULT_REPORT, show_default=True,
              help="File the full JSON report (every bad sample, the verdict) is written to, pass or fail. An "
                   "earlier data-check report there is replaced; any other existing file needs --overwrite.")
@click.option("--overwrite", is_flag=True,
              help="Replace an existing --out file (never one inside a dataset, a run directory or an input).")
@click.option("--lists", "lists_dir", type=click.Path(path_type=Path),
              help="Also audit EdgeFlowNet legacy list files (FC2_dirnames.txt, FC2_{train,val,test}.txt) in DIR.")
@click.option("--lists_base", "--lists-base", "lists_base", type=click.Path(path_type=Path),
              help="Root the legacy list entries are relative to [default: entries are absolute paths].")
@click.option("--shards_dir", "--shards-dir", "shards_dir", cls=Option, aliases=("--shards",),
              type=click.Path(path_type=Path),
              help="Verify a packed set (efnas pack --out): manifest, sha256, counts, every chunk's checksum.")
def data_check(config: Optional[Path], train_dir: Optional[Path], val_dir: Optional[Path], deep: bool,
               workers: Optional[int], max_bad: int, report: Path, overwrite: bool, lists_dir: Optional[Path],
               lists_base: Optional[Path], shards_dir: Optional[Path]) -> None:
    """Scan FC2 train/val folders; print sample counts and every bad sample by reason.

    Both splits are always checked.  Quick mode reads file headers (PNG and
    .flo), --deep decodes everything.  Exits non-zero when a split has no
    usable sample or bad samples exceed --max_bad; the JSON report (--out) is
    written either way.
    """
    from edgeflownas.data import check

    request = check.CheckRequest(check.split_directories(config, train_dir, val_dir), lists_dir, lists_base,
                                 shards_dir, deep, workers, max_bad)
    inputs = [config, lists_dir, shards_dir, *request.directories.values()]  # lists_base: a root, not data
    check.check_report_path(report)
    check_output_file(report, "--out", JSON_REPORT, overwrite, inputs=inputs, own=check.is_report)
    result = check.run_data_check(request, report, progress=sys.stderr.isatty())
    for section in result.sections:
        click.echo(section)
    click.echo(f"report: {report}")
    if not result.ok:
        raise DataError("data-check failed: " + "; ".join(result.problems))
    click.echo("data-check: ok")


@click.command()
@click.option("--out", type=OutputPath("folder"), required=True, help="Dataset root; writes OUT/train and OUT/val.")
@click.option("--train_samples", "--train-samples", "train_count", cls=Option, aliases=("--train",),
              type=click.IntRange(min=0), required=True, help="Number of train samples.")
@click.option("--val_samples", "--val-samples", "val_count", cls=Option, aliases=("--val",),
              type=click.IntRange(min=0), required=True, help="Number of val samples.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True,
              help="Every sample is a function of (seed, split, index).")
@click.option("--height", type=click.IntRange(min=16, max=SYNTH_MAX_SIDE), default=384, show_default=True,
              help="Image height (FC2: 384).")
@click.option("--width", type=click.IntRange(min=16, max=SYNTH_MAX_SIDE), default=512, show_default=True,
              help="Image width (FC2: 512).")
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True, help="Worker processes.")
@click.option("--preset", type=click.Choice(SYNTH_PRESETS), default="chairs", show_default=True,
              help="chairs: FC2-like scenes; learnable: smoother texture and milder motion, which a supernet "
                   "learns at small sizes on a CPU (studies/learnability).")
def synth(out: Path, train_count: int, val_count: int, seed: int, height: int, width: int, workers: int,
          preset: str) -> None:
    """Write a FlyingChairs-like synthetic dataset in exact FC2 layout (tests, demo, benchmarks).

    A textured background and shapes under random affine motions; flow_01 is
    exact.  Never a stand-in for missing real FC2 data.
    """
    from edgeflownas.data.synth import write_dataset

    check_output_folder(out, "--out")
    counts = write_dataset(out, train_count, val_count, seed, height=height, width=width, workers=workers,
                           progress=sys.stderr.isatty(), preset=preset)
    click.echo(f"synth: wrote {counts['train']} train and {counts['val']} val samples "
               f"({height}x{width}, seed {seed}, preset {preset}) to {out}")


@click.command()
@click.option("--src", type=click.Path(path_type=Path), required=True, help="FC2 root holding train/ and val/.")
@click.option("--out", type=OutputPath("folder"), required=True,
              help="Output directory (new, empty, or an interrupted pack of the same source to finish).")
@click.option("--resolution", type=click.Choice(["train", "native"]), default="train", show_default=True,
              help="train: resize to --height x --width (flow rescaled); native: keep the source size.")
@click.option("--height", type=click.IntRange(min=16), default=180, show_default=True, help="Training height.")
@click.option("--width", type=click.IntRange(min=16), default=240, show_default=True, help="Training width.")
@click.option("--shard_size", "--shard-size", "shard_size", type=click.IntRange(min=1), default=1000, show_default=True, help="Samples per shard.")
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="Decode/resize worker processes [default: all CPUs].")
def pack(src: Path, out: Path, resolution: str, height: int, width: int, shard_size: int,
         workers: Optional[int]) -> None:
    """Pack FC2 folders into per-split HDF5 shards plus manifest.json.

    Refuses a source with an empty split or any bad sample (nothing is
    written).  Re-running an interrupted pack finishes it, keeping the shards
    whose sha256 still matches the manifest.
    """
    from edgeflownas.data.pack import pack as pack_folders
    from edgeflownas.data.scan import default_workers

    check_output_folder(out, "--out", inputs=[src], own="shard set")

    result = pack_folders(src, out, resolution=resolution, height=height, width=width, shard_size=shard_size,
                          workers=workers or default_workers(), progress=sys.stderr.isatty(),
                          notice=lambda line: click.echo(line, err=True))
    size = result.manifest["resolution"]
    for split, info in result.manifest["splits"].items():
        click.echo(f"{split}_samples: {info['samples']} ({len(info['shards'])} shards)")
    if result.redone:
        click.echo(f"rewritten (missing or sha256 mismatch): {', '.join(result.redone)}")
    click.echo(f"pack: {len(result.written)} shards written, {len(result.reused)} reused, "
               f"{size['height']}x{size['width']} ({size['mode']}) in {out}")

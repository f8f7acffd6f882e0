"""``efnas infer``: optical flow of image pairs with an exported model (option parsing and output only)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional, Tuple

import click

from edgeflownas.errors import ConfigError
from edgeflownas.outputs import FLOW_FILE, PNG_PICTURE, OutputPath, check_output_file, check_output_folder


@click.command("infer")
@click.argument("images", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--model", "model_dir", type=click.Path(path_type=Path), default=None,
              help="Export directory written by 'efnas export'.")
@click.option("--run", "run_dir", type=click.Path(path_type=Path), default=None,
              help="Instead of --model: a run directory; its subnet is exported on the fly (SavedModel) into "
                   "RUN/exports/<subnet>-<key>, which later calls reuse while it matches the checkpoint.")
@click.option("--arch", default=None, help="With --run: the subnet (as in 'efnas export --arch').")
@click.option("--format", "fmt", type=click.Choice(["saved_model", "tflite", "tflite_int8"]), default=None,
              help="Which exported file to run (default: saved_model if exported, else tflite, else tflite_int8); "
                   "with --run only saved_model.")
@click.option("--out", "out", required=True, type=OutputPath("file or folder"),
              help="The .flo file for a pair; a new (or empty) folder for a folder of pairs.")
@click.option("--png", type=OutputPath("file", PNG_PICTURE), default=None,
              help="Colour-wheel PNG of the flow with a legend (pair mode; a folder gets one per pair anyway).")
@click.option("--overwrite", is_flag=True,
              help="Replace an existing --out/--png file (never an input, nor a file inside a dataset or run "
                   "directory).")
def infer(images: Tuple[Path, ...], model_dir: Optional[Path], run_dir: Optional[Path], arch: Optional[str],
          fmt: Optional[str], out: Path, png: Optional[Path], overwrite: bool) -> None:
    """Flow of IMG0 IMG1, or of every pair in one FOLDER.

    A FOLDER of FC2-named pairs (NNNNNNN-img_0.png / -img_1.png) gives one flow
    per pair (NNNNNNN-flow_01.flo); a folder of plain PNG frames gives one flow
    per consecutive pair, named after its first frame.  Images of any size are
    resized to the model's input size; the flow is resized back and scaled to
    the input's pixels.  Writes a Middlebury .flo (read by efnas and
    cv2.readOpticalFlow) and a colour-wheel PNG.  A ground-truth .flo beside a
    pair's first image (NNNNNNN-flow_01.flo, or the frame's name with .flo) is
    scored: EPE and the share of pixels with error above 1, 3, 5 px.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    folder_mode = len(images) == 1
    if len(images) > 2 or (folder_mode and not images[0].is_dir()):
        raise ConfigError(f"got {len(images)} image argument(s): give IMG0 IMG1, or one folder of pairs or frames")
    if (model_dir is None) == (run_dir is None):
        raise ConfigError("give either --model EXPORT_DIR or --run RUN (with --arch), not both and not neither")
    inputs = [*images, model_dir, run_dir]
    if folder_mode:
        from edgeflownas.export.api import check_out_dir

        check_output_folder(out, "--out", inputs=inputs)
        check_out_dir(out)
    else:
        check_output_file(out, "--out", FLOW_FILE, overwrite, inputs=inputs)
        if png is not None:
            check_output_file(png, "--png", PNG_PICTURE, overwrite, inputs=inputs, others=[out])
    if run_dir is not None and fmt not in (None, "saved_model"):
        raise ConfigError(f"--format {fmt} needs --model: 'efnas infer --run' exports a SavedModel only (export "
                          f"{fmt} with efnas export --run RUN --format {fmt} --out DIR, then give --model DIR)")
    if run_dir is not None:
        from edgeflownas.export.run_cache import FORMAT, exported_model

        model_dir, fmt = exported_model(run_dir, arch, log=lambda line: click.echo(line, err=True)), FORMAT
    _run(model_dir, fmt, images, folder_mode, out, png)


def _run(model_dir: Path, fmt: Optional[str], images: Tuple[Path, ...], folder_mode: bool, out: Path,
         png: Optional[Path]) -> None:
    from tqdm import tqdm

    from edgeflownas.export.infer import ground_truth_path, infer_folder, infer_pair, score_text, total
    from edgeflownas.export.model import ExportedModel

    model = ExportedModel(model_dir, fmt)
    if folder_mode:
        result = infer_folder(model, images[0], out, True, progress=lambda items, **kw: tqdm(items, **kw))
        click.echo(f"wrote {result.pairs} flow file(s) (.flo and .png) of {result.kind} to {out} with {model.format}")
        if result.scores:
            click.echo(f"ground truth beside {len(result.scores)} of {result.pairs} pair(s): "
                       f"{score_text(total(result.scores))} (input pixels)")
        return
    flow, found = infer_pair(model, images[0], images[1], out, png)
    magnitude = float(((flow ** 2).sum(axis=-1) ** 0.5).mean())
    click.echo(f"wrote {out} ({flow.shape[0]}x{flow.shape[1]} HxW, mean |flow| {magnitude:.2f} px, {model.format})"
               + (f" and {png}" if png else ""))
    if found is not None:
        click.echo(f"ground truth {ground_truth_path(images[0])}: {score_text(found)} (input pixels)")

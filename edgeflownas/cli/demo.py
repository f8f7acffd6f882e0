"""``efnas demo``: the whole main job on a small synthetic FC2 set, in a few minutes on a CPU.

Runs the real commands one after another, printing each as you would type it:
``efnas synth`` -> ``efnas data-check`` -> ``efnas pack`` -> ``efnas train
--fast_mode`` reading the shards -> ``efnas report`` -> ``efnas export`` of the
best pool subnet to TFLite (its val EPE and latency printed), then a summary of
where everything is and what to run next.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import List, Optional

import click

from edgeflownas.cli.options import Option, switch_spellings
from edgeflownas.nas.arch_codec import arch_name


def best_pool_code(run: Path):
    """The pool subnet with the lowest EPE at the run's last evaluation."""
    from edgeflownas.report.run_data import load_run

    data = load_run(run)
    row = data.evaluated()[-1]
    return min(zip(data.pool, data.epe_columns), key=lambda pair: row[pair[1]])[0]


def export_summary(export_dir: Path) -> str:
    """What the demo's exported model scores and costs, from its export manifest."""
    doc = json.loads((export_dir / "export_manifest.json").read_text(encoding="utf-8"))
    tflite = doc["formats"]["tflite"]
    return (f"exported {doc['arch_name']} (best pool subnet) to "
            f"{export_dir / tflite['file']}: val EPE {tflite['epe']:.4f} px, {tflite['latency_ms']:.1f} ms per pair "
            f"on this machine ({tflite['latency']['threads']} thread), {tflite['size_bytes'] / 1e6:.1f} MB")


def _run(args: List[str]) -> None:
    """Echo and run one efnas command in this process; its errors stop the demo."""
    from edgeflownas.cli import main

    click.echo(f"\n$ efnas {' '.join(args)}", err=False)
    code = main.main(args=args, prog_name="efnas", standalone_mode=False)
    if isinstance(code, int) and code != 0:
        raise click.exceptions.Exit(code)


@click.command()
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="New or empty directory for the dataset, shards, run and report "
                   "[default: outputs/demo-<date>-<time>, new on every call].")
@click.option("--config", "config_path", type=click.Path(path_type=Path), default=None,
              help="Run config (default: configs/supernet_fc2_180x240.yaml, 180x240).")
@click.option("--train_samples", "--train-samples", "train_samples", type=click.IntRange(min=1), default=48, show_default=True,
              help="Synthetic training pairs (384x512, FC2 layout).")
@click.option("--val_samples", "--val-samples", "val_samples", type=click.IntRange(min=1), default=8, show_default=True,
              help="Synthetic validation pairs.")
@click.option("--num_epochs", "--num-epochs", "num_epochs", type=click.IntRange(min=1), default=2, show_default=True, help="Epochs to train.")
@click.option("--batch_size", "--batch-size", "batch_size", type=click.IntRange(min=1), default=8, show_default=True,
              help="Training batch (the spec's 32 also works, ~3x slower on a CPU).")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True, help="Synthetic data seed.")
@click.option(*switch_spellings("report"), "with_report", cls=Option, default=True, show_default=True,
              help="Finish with 'efnas report' on the run (figures, flow pictures, HTML page).")
def demo(out: Optional[Path], config_path: Optional[Path], train_samples: int, val_samples: int, num_epochs: int,
         batch_size: int, seed: int, with_report: bool) -> None:
    """Synthetic FC2 set -> data-check -> pack -> 'efnas train --fast_mode' -> report -> TFLite export.

    Everything goes under --out (which must be new or empty): fc2/ (train/, val/),
    data_check.json, shards/, runs/demo/ (checkpoints, manifest, EPE history,
    fairness counts, eval pool, TensorBoard events), runs/demo/report/ and export/
    (the best pool subnet as TFLite, with its manifest).  The summary prints each
    evaluated epoch's mean EPE beside the zero-flow EPE of the same validation
    batches (a mean EPE near it has learnt only the mean flow).
    The synthetic set is made explicitly here; training never falls back to it.
    """
    from edgeflownas.config import default_config_path, resolve
    from edgeflownas.errors import ConfigError

    out = out or Path("outputs") / time.strftime("demo-%Y%m%d-%H%M%S")
    if out.exists() and any(out.iterdir()):
        raise ConfigError(f"--out {out} is not empty: pass a new directory (the demo never overwrites)")
    config_path = config_path or default_config_path()
    data_cfg = resolve(config_path).config.data
    fc2, shards, runs = out / "fc2", out / "shards", out / "runs"
    workers = str(max(1, min(4, os.cpu_count() or 1)))
    _run(["synth", "--out", str(fc2), "--train_samples", str(train_samples), "--val_samples", str(val_samples),
          "--seed", str(seed), "--workers", workers])
    _run(["data-check", "--train_dir", str(fc2 / "train"), "--val_dir", str(fc2 / "val"),
          "--out", str(out / "data_check.json")])
    _run(["pack", "--src", str(fc2), "--out", str(shards), "--height", str(data_cfg.input_height),
          "--width", str(data_cfg.input_width), "--shard_size", "16", "--workers", workers])
    _run(["train", "--config", str(config_path), "--fast_mode", "--num_epochs", str(num_epochs),
          "--batch_size", str(batch_size), "--data_source", "shards", "--shards_dir", str(shards),
          "--train_dir", str(fc2 / "train"), "--val_dir", str(fc2 / "val"),
          "--output_root", str(runs), "--experiment_name", "demo"])
    run = runs / "demo"
    if with_report:
        _run(["report", "--run", str(run), "--flow_samples", "2"])
    best = best_pool_code(run)
    _run(["export", "--run", str(run), "--arch", arch_name(best), "--ckpt", "last", "--out", str(out / "export"),
          "--format", "tflite"])
    click.echo(export_summary(out / "export"))
    click.echo(f"\ndemo done in {out}: data {fc2}, data check {out / 'data_check.json'}, shards {shards}, run {run}"
               + (f", report {run / 'report' / 'report.html'}" if with_report else "")
               + f", TFLite model {out / 'export'}")
    click.echo(f"next:  efnas eval --run {run} --arch pool --ckpt last      # any subnet: --arch 0,1,2,0,0,1,2,1,0\n"
               f"       tensorboard --logdir {run / 'tensorboard'}")

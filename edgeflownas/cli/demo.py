"""``efnas demo``: the whole main job on a synthetic FC2 set, learning flow within a few minutes on a CPU.

Runs the real commands one after another, printing each as you would type it:
``efnas synth --preset learnable`` -> ``efnas data-check`` -> ``efnas pack`` ->
``efnas train`` of the strict-fairness supernet from scratch, reading the shards
-> ``efnas report`` -> ``efnas export`` of the best pool subnet to TFLite (its
val EPE and latency printed), then a summary of where everything is, how long
each stage took, and the rest of the chain on its own run (``next_commands``:
the README's walk-through with the demo's paths).  The recipe is the one
``studies/learnability/README.md`` found: at CPU sizes a supernet with tied
options (``model.option_init: tied``) leaves the mean flow from scratch.
``--warmup_epochs N`` first trains the EdgeFlowNet baseline alone and lets the
supernet inherit it (the older recipe; it biases the supernet towards the
baseline's options).
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
from edgeflownas.outputs import OutputPath


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
@click.option("--out", type=OutputPath("folder"), default=None,
              help="New or empty directory for the dataset, shards, runs, report and export "
                   "[default: outputs/demo-<date>-<time>, new on every call].")
@click.option("--config", "config_path", type=click.Path(path_type=Path), default=None,
              help="Run config (default: configs/learnable_small.yaml: 48x64, width 8, tied options, plain L1, "
                   "constant lr 1e-3, 62 steps per epoch); its data: section is replaced by the demo's data.")
@click.option("--train_samples", "--train-samples", "train_samples", type=click.IntRange(min=1), default=1000,
              show_default=True, help="Synthetic training pairs (FC2 layout, at the config's input size).")
@click.option("--val_samples", "--val-samples", "val_samples", type=click.IntRange(min=1), default=200,
              show_default=True, help="Synthetic validation pairs.")
@click.option("--warmup_epochs", "--warmup-epochs", "warmup_epochs", type=click.IntRange(min=0), default=0,
              show_default=True, help="Epochs of the EdgeFlowNet baseline alone before the supernet, which then "
                                      "inherits it (0: none; the supernet learns from scratch with tied options).")
@click.option("--num_epochs", "--num-epochs", "num_epochs", type=click.IntRange(min=1), default=10, show_default=True,
              help="Epochs of the supernet (10 x 62 = 620 cycles with the default config; from scratch it leaves "
                   "the mean flow after 200-500: pool EPE 0.82x zero flow after 7 epochs, 0.63x after 10).")
@click.option("--batch_size", "--batch-size", "batch_size", type=click.IntRange(min=1), default=None,
              help="Training batch [default: the config's].")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True, help="Synthetic data seed.")
@click.option(*switch_spellings("report"), "with_report", cls=Option, default=True, show_default=True,
              help="Finish with 'efnas report' on the run (figures, flow pictures, HTML page).")
def demo(out: Optional[Path], config_path: Optional[Path], train_samples: int, val_samples: int,
         warmup_epochs: int, num_epochs: int, batch_size: Optional[int], seed: int, with_report: bool) -> None:
    """Synthetic FC2 set -> data-check -> pack -> supernet -> report -> TFLite export.

    Everything goes under --out (which must be new or empty): fc2/ (train/, val/),
    data_check.json, shards/, runs/warmup/ (only with --warmup_epochs: the
    EdgeFlowNet baseline trained alone), runs/demo/ (the supernet: checkpoints, manifest, EPE
    history, fairness counts, eval pool, TensorBoard events), runs/demo/report/
    and export/ (the best pool subnet as TFLite, with its manifest).  The
    training summaries print each evaluated epoch's mean EPE beside the
    zero-flow EPE of the same validation batches (a mean EPE near it has learnt
    only the mean flow).  The synthetic set is made explicitly here; training
    never falls back to it.
    """
    from edgeflownas.config import resolve, shipped_file
    from edgeflownas.errors import ConfigError
    from edgeflownas.outputs import check_output_folder

    out = out or Path("outputs") / time.strftime("demo-%Y%m%d-%H%M%S")
    check_output_folder(out, "--out")
    if out.exists() and any(out.iterdir()):
        raise ConfigError(f"--out {out} is not empty: pass a new directory (the demo never overwrites)")
    config_path = config_path or shipped_file("configs/learnable_small.yaml")
    data_cfg = resolve(config_path).config.data
    size = ["--height", str(data_cfg.input_height), "--width", str(data_cfg.input_width)]
    fc2, shards, runs = out / "fc2", out / "shards", out / "runs"
    workers = str(max(1, min(4, os.cpu_count() or 1)))
    stages = []

    def stage(name: str, args: List[str]) -> None:
        started = time.monotonic()
        _run(args)
        stages.append((name, time.monotonic() - started))

    stage("synth", ["synth", "--preset", "learnable", "--out", str(fc2), "--train_samples", str(train_samples),
                    "--val_samples", str(val_samples), "--seed", str(seed), "--workers", workers, *size])
    stage("data-check", ["data-check", "--train_dir", str(fc2 / "train"), "--val_dir", str(fc2 / "val"),
                         "--out", str(out / "data_check.json")])
    stage("pack", ["pack", "--src", str(fc2), "--out", str(shards), *size, "--shard_size", "256",
                   "--workers", workers])
    common = ["--config", str(config_path), "--data_source", "shards", "--shards_dir", str(shards),
              "--train_dir", str(fc2 / "train"), "--val_dir", str(fc2 / "val"), "--output_root", str(runs)]
    common += ["--batch_size", str(batch_size)] if batch_size is not None else []
    if warmup_epochs:
        stage("warm-up", ["train", *common, "--experiment_name", "warmup", "--num_epochs", str(warmup_epochs),
                          "--set", "train.supernet_mode=fixed_arch", "--set", "checkpoint.resume_experiment_name=null"])
    inherit = "warmup" if warmup_epochs else "null"
    stage("supernet", ["train", *common, "--experiment_name", "demo", "--num_epochs", str(num_epochs),
                       "--set", f"checkpoint.resume_experiment_name={inherit}"])
    run = runs / "demo"
    if with_report:
        stage("report", ["report", "--run", str(run), "--flow_samples", "2"])
    best = best_pool_code(run)
    stage("export", ["export", "--run", str(run), "--arch", arch_name(best), "--ckpt", "last",
                     "--out", str(out / "export"), "--format", "tflite"])
    click.echo(export_summary(out / "export"))
    click.echo(learning_summary(run))
    click.echo("stages: " + ", ".join(f"{name} {seconds:.0f} s" for name, seconds in stages)
               + f"; total {sum(seconds for _, seconds in stages):.0f} s; disk {disk_use(out) / 1e6:.0f} MB")
    click.echo(f"\ndemo done in {out}: data {fc2}, data check {out / 'data_check.json'}, shards {shards}, run {run}"
               + (f", report {run / 'report' / 'report.html'}" if with_report else "")
               + f", TFLite model {out / 'export'}")
    click.echo(next_steps(out))

def next_commands(out: Path) -> List[str]:
    """The rest of the chain on the demo's own run: evaluate, search, retrain the best, export, infer, TensorBoard.

    The README's walk-through is these commands with ``--out demo``.
    """
    runs, val = out / "runs", out / "fc2" / "val"
    pair = sorted(val.glob("*-img_0.png"))[0]
    return [
        f"efnas eval --run {runs / 'demo'} --arch pool",
        f"efnas search --run {runs / 'demo'} --budget 20",
        f"efnas retrain --run {runs / 'demo'} --arch best --init supernet --experiment_name best",
        f"efnas export --run {runs / 'best'} --out {out / 'model'}",
        f"efnas infer --model {out / 'model'} {pair} {pair.with_name(pair.name.replace('-img_0', '-img_1'))} "
        f"--out {out / 'flow.flo'} --png {out / 'flow.png'}",
        f"efnas infer --model {out / 'model'} {val} --out {out / 'flows'}",
        f"tensorboard --logdir {runs}",
    ]


def next_steps(out: Path) -> str:
    """The demo's closing lines: the commands that take its run to flow on your own images."""
    comments = ["score the 12 pool subnets", "EPE-vs-MACs Pareto front (RUN/search/front.json)",
                "the front's best subnet on its own", "SavedModel + TFLite float + int8, each scored",
                "flow of one pair: .flo + PNG", "every pair of a folder (your own frames too)",
                "curves, hparams and flow pictures"]
    return "next (the README's walk-through on this run):\n" + "\n".join(
        f"  # {comment}\n  {line}" for line, comment in zip(next_commands(out), comments))


def learning_summary(run: Path) -> str:
    """Whether the supernet learnt flow: its last mean pool EPE against the zero-flow EPE of the same batches."""
    from edgeflownas.report.run_data import load_run
    from edgeflownas.train import run_dir as rd

    data = load_run(run)
    row = data.evaluated()[-1]
    epe, zero = row[data.mean_column], row.get(rd.ZERO_FLOW)
    if not zero:
        return f"supernet: {data.mean_column} {epe:.4f} px"
    verdict = ("learnt flow beyond the mean motion" if epe < 0.8 * zero else
               "has not learnt more than the mean flow yet (train longer: --num_epochs)")
    return (f"supernet: {data.mean_column} {epe:.4f} px = {epe / zero:.2f}x the zero-flow EPE {zero:.4f} px of the "
            f"same val batches: it {verdict}")


def disk_use(folder: Path) -> int:
    """Bytes of every file below ``folder``."""
    return sum(path.stat().st_size for path in Path(folder).rglob("*") if path.is_file())
